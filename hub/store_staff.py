"""Staff accounts and console sessions in the hub database (schema step 0014).

A session is found by the SHA-256 of its cookie value, and only while its user is active and
it has not expired: disabling a person ends every session they have at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hub.store_base import Row, StoreBase, new_id

if TYPE_CHECKING:
    from hub.store_api import NewStaffUser

_SESSION_USER = (
    "SELECT s.session_hash, s.csrf_token, s.expires_ms, u.id AS user_id, u.username,"
    " u.tenant_id, u.venue_id, u.role FROM staff_sessions s"
    " JOIN staff_users u ON u.id = s.user_id"
    " WHERE s.session_hash = ? AND s.expires_ms > ? AND u.disabled_ms IS NULL"
)


class StaffStore(StoreBase):
    def create_staff_user(self, tenant_id: str, user: NewStaffUser, actor: str, now_ms: int) -> Row:
        row: Row = {
            "id": new_id(),
            "tenant_id": tenant_id,
            "venue_id": user.venue_id,
            "username": user.username,
            "role": user.role,
            "password_hash": user.password_hash,
            "created_ms": now_ms,
        }
        detail = {"username": user.username, "role": user.role, "venue_id": user.venue_id}
        self._insert_audited(
            "staff_users", row, tenant_id, user.venue_id, actor, "user.create", now_ms, detail
        )
        return {k: v for k, v in row.items() if k != "password_hash"}

    def staff_users(self, tenant_id: str) -> list[Row]:
        return list(
            self.db.query(
                "SELECT id, tenant_id, venue_id, username, role, created_ms, disabled_ms"
                " FROM staff_users WHERE tenant_id = ? ORDER BY username",
                [tenant_id],
            )
        )

    def staff_user_named(self, username: str) -> Row | None:
        """The account (with its password hash) for signing in; disabled ones too, so the
        caller can tell a disabled person why."""
        return self._one("SELECT * FROM staff_users WHERE username = ?", [username])

    def disable_staff_user(self, user_id: str, actor: str, now_ms: int) -> Row | None:
        """Disable an account and end its sessions; None if it is unknown or already off."""
        with self._writing():
            user = self._one(
                "SELECT * FROM staff_users WHERE id = ? AND disabled_ms IS NULL", [user_id]
            )
            if user is None:
                return None
            self.db.execute(
                "UPDATE staff_users SET disabled_ms = ? WHERE id = ?", [now_ms, user_id]
            )
            ended = self.db.execute("DELETE FROM staff_sessions WHERE user_id = ?", [user_id])
            detail = {"username": user["username"], "sessions_ended": ended.rowcount}
            self._audit(
                user["tenant_id"], user["venue_id"], actor, "user.disable", user_id, detail, now_ms
            )
        return {**user, "disabled_ms": now_ms}

    def start_staff_session(
        self, user: Row, session_hash: str, csrf_token: str, now_ms: int, expires_ms: int
    ) -> None:
        with self._writing():
            self.db.execute("DELETE FROM staff_sessions WHERE expires_ms <= ?", [now_ms])
            self.db.table("staff_sessions").insert(
                {
                    "session_hash": session_hash,
                    "user_id": user["id"],
                    "csrf_token": csrf_token,
                    "created_ms": now_ms,
                    "expires_ms": expires_ms,
                }
            )
            detail = {"username": user["username"]}
            self._audit(
                user["tenant_id"],
                user["venue_id"],
                f"user:{user['username']}",
                "user.sign_in",
                user["id"],
                detail,
                now_ms,
            )

    def staff_session(self, session_hash: str, now_ms: int) -> Row | None:
        return self._one(_SESSION_USER, [session_hash, now_ms])

    def end_staff_session(self, session_hash: str) -> None:
        with self._writing():
            self.db.execute("DELETE FROM staff_sessions WHERE session_hash = ?", [session_hash])
