import sys

from demo.scene import main

sys.exit(main())
