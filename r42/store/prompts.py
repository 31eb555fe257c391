"""Each gateway user's own privacy-judge template (GET/PUT/DELETE /v1/me/privacy-prompt, the
dashboard's "Privacy judge" panel).

One row per user who changed theirs, in `privacy_prompts`; a user without a row gets the default
(the `privacy_judge_prompt` setting, else r42.privacy_judge.DEFAULT_PROMPT), so resetting is
deleting the row and a later change of the setting reaches everyone who never edited theirs.
Templates are checked (r42.privacy_judge.check_template) before they are stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from r42.privacy_judge import check_template, default_template
from r42.store.db import readable_errors, reading, writing


@dataclass(frozen=True)
class JudgeTemplate:
    """The template the judge uses for one user, whether it is their own, and the default."""

    user: str
    template: str
    own: bool
    default: str
    updated: float | None = None  # when the user last saved their own

    def as_dict(self) -> dict[str, object]:
        from r42.store.keys import iso

        return {
            "user": self.user,
            "template": self.template,
            "source": "yours" if self.own else "default",
            "default": self.default,
            "updated": iso(self.updated),
        }


def own_template(user: str) -> tuple[str, float] | None:
    """(template, when saved) of the user's own template, None when they use the default."""
    conn = reading()
    if conn is None:
        return None
    with readable_errors():
        row = conn.execute(
            "SELECT template, updated FROM privacy_prompts WHERE user_name = ?",
            (user,),
        ).fetchone()
    return None if row is None else (row[0], row[1])


def template_for(user: str, configured: str | None) -> JudgeTemplate:
    """What the judge asks for `user`: their own template, else the default (`configured`: the setting)."""
    default = default_template(configured)
    found = own_template(user)
    if found is None:
        return JudgeTemplate(user, default, False, default)
    return JudgeTemplate(user, found[0], True, default, found[1])


def set_template(user: str, template: str, actor: str) -> None:
    """Store the user's own template, and who set it in the audit log (its length, never the text);
    InputError when it is not a valid one."""
    from r42.store import audit

    checked = check_template(template)
    with writing() as conn:
        conn.execute(
            "INSERT INTO privacy_prompts (user_name, template, updated) VALUES (?, ?, ?)"
            " ON CONFLICT (user_name) DO UPDATE SET template = excluded.template, updated = excluded.updated",
            (user, checked, time.time()),
        )
    audit.record(actor, "privacy_prompt.set", user, {"chars": len(checked)})


def reset_template(user: str, actor: str) -> bool:
    """Back to the default (audited as `actor`'s); False when the user had no template of their own."""
    from r42.store import audit

    if reading() is None:
        return False
    with writing() as conn:
        cursor = conn.execute("DELETE FROM privacy_prompts WHERE user_name = ?", (user,))
    if cursor.rowcount > 0:
        audit.record(actor, "privacy_prompt.reset", user)
        return True
    return False
