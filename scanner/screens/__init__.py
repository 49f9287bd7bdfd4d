"""The gate app's screens: verdict (+ attention), lookup, history, settings and PIN."""
