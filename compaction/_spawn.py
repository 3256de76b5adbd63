"""Start a fresh agent process with a handoff as its prompt: detached, logged, no shell.

Off unless configured. The command template comes from ``CONTEXT_DISTILL_SPAWN_COMMAND``, a
JSON list of strings in which ``{prompt}`` stands for the handoff text, for example

    CONTEXT_DISTILL_SPAWN_COMMAND='["claude", "-p", "{prompt}"]'
    CONTEXT_DISTILL_SPAWN_COMMAND='["codex", "exec", "{prompt}"]'

The handoff is substituted into list elements as plain text and the list is executed
directly (``subprocess.Popen(argv)``, never a shell), so nothing in a transcript or goal can
become a command: ``; rm -rf / $(...)`` arrives as one literal argument. If no element holds
``{prompt}``, the prompt is appended as the last argument. The child gets its own session
(it outlives the caller), stdin from /dev/null, and stdout+stderr in a log file under
``<data_dir>/spawn-logs/``. ``spawn_agent`` returns at once with the child's pid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from ._exceptions import ContextDistillError
from ._redact import redact_secrets

__all__ = [
    "SpawnResult",
    "SpawnError",
    "SpawnNotConfiguredError",
    "SPAWN_ENV",
    "PROMPT_PLACEHOLDER",
    "spawn_template_from_env",
    "build_argv",
    "spawn_agent",
    "spawn_from_env",
]

SPAWN_ENV = "CONTEXT_DISTILL_SPAWN_COMMAND"
PROMPT_PLACEHOLDER = "{prompt}"
_HOW = (
    f'set {SPAWN_ENV} to a JSON list with a {PROMPT_PLACEHOLDER} placeholder, '
    f'e.g. {SPAWN_ENV}=\'["claude", "-p", "{PROMPT_PLACEHOLDER}"]\' or \'["codex", "exec", "{PROMPT_PLACEHOLDER}"]\''
)


class SpawnError(ContextDistillError):
    """The agent process could not be started."""


class SpawnNotConfiguredError(SpawnError):
    """Spawning is off: no command template is configured."""


class SpawnResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    pid: int = Field(description="Process id of the started agent.")
    log_path: str = Field(description="File that receives the agent's stdout and stderr.")
    argv: list[str] = Field(description="The exact argument list it was started with (no shell).")


def _check_template(template: object, source: str) -> list[str]:
    if not isinstance(template, (list, tuple)) or not template:
        raise SpawnError(f"{source} must be a non-empty JSON list of strings; {_HOW}")
    if not all(isinstance(a, str) for a in template):
        raise SpawnError(f"{source} must hold only strings; {_HOW}")
    if not template[0].strip():
        raise SpawnError(f"{source}: the first element must name the program to run; {_HOW}")
    return list(template)


def spawn_template_from_env(env: Mapping[str, str] | None = None) -> list[str]:
    """The configured template, or SpawnNotConfiguredError saying how to configure it."""
    env = os.environ if env is None else env
    raw = (env.get(SPAWN_ENV) or "").strip()
    if not raw:
        raise SpawnNotConfiguredError(f"spawning an agent is off; to turn it on, {_HOW}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise SpawnError(f"{SPAWN_ENV} is not valid JSON; {_HOW}") from None
    return _check_template(value, SPAWN_ENV)


def build_argv(template: Sequence[str], prompt: str) -> list[str]:
    """Substitute ``prompt`` for ``{prompt}`` in each element (plain text replacement)."""
    argv = _check_template(template, "the spawn template")
    if not isinstance(prompt, str):
        raise SpawnError("the handoff prompt must be text")
    if "\x00" in prompt:
        prompt = prompt.replace("\x00", "")  # execve cannot carry NUL bytes
    if any(PROMPT_PLACEHOLDER in a for a in argv):
        return [a.replace(PROMPT_PLACEHOLDER, prompt) for a in argv]
    return argv + [prompt]


def _reap(proc: subprocess.Popen) -> None:
    try:
        proc.wait()
    except Exception:  # noqa: BLE001 - reaping is best effort
        pass


def spawn_agent(
    handoff_text: str,
    template: Sequence[str],
    cwd: str | os.PathLike[str] | None,
    log_dir: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
) -> SpawnResult:
    """Start ``template`` with the handoff as its prompt, detached; return without waiting."""
    prompt = redact_secrets(handoff_text) if isinstance(handoff_text, str) else handoff_text
    argv = build_argv(template, prompt)  # type: ignore[arg-type]
    workdir = Path(cwd).expanduser() if cwd else Path.cwd()
    if not workdir.is_dir():
        raise SpawnError(f"cannot start the agent in {workdir}: not a folder")
    program = argv[0]
    resolved = shutil.which(program, path=(env or os.environ).get("PATH")) if os.sep not in program else program
    if resolved is None or not os.path.exists(resolved):
        raise SpawnError(f"cannot start the agent: program {program!r} not found on PATH; check {SPAWN_ENV}")
    logs = Path(log_dir).expanduser()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    try:
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"spawn-{stamp}.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    except OSError as exc:
        raise SpawnError(
            f"cannot write the spawn log in {logs}: {exc.strerror or exc}; set CONTEXT_DISTILL_DATA_DIR to a writable folder"
        ) from None
    with os.fdopen(fd, "ab") as logf:
        header = f"# context-distill spawn {stamp} cwd={workdir} program={program} prompt_chars={len(prompt)}\n"
        logf.write(header.encode("utf-8", "replace"))
        logf.flush()
        kwargs: dict = {}
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True
        try:
            proc = subprocess.Popen(  # noqa: S603 - an argument list, never a shell
                argv,
                cwd=str(workdir),
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                close_fds=True,
                shell=False,
                env=dict(env) if env is not None else None,
                **kwargs,
            )
        except OSError as exc:
            raise SpawnError(f"cannot start {program!r}: {exc.strerror or exc}; check {SPAWN_ENV}") from None
    # reap the child when it ends so a long-running server collects no zombies
    threading.Thread(target=_reap, args=(proc,), name=f"reap-{proc.pid}", daemon=True).start()
    return SpawnResult(pid=proc.pid, log_path=str(log_path), argv=argv)


def spawn_from_env(handoff_text: str, cwd: str | os.PathLike[str] | None, *, data_dir: str | os.PathLike[str] | None = None) -> SpawnResult:
    """``spawn_agent`` with the template from ``CONTEXT_DISTILL_SPAWN_COMMAND`` and logs in
    ``<data_dir>/spawn-logs`` (data_dir defaults to Settings().data_dir). Raises
    SpawnNotConfiguredError when spawning is off."""
    template = spawn_template_from_env()
    if data_dir is None:
        from ._config import default_settings

        data_dir = default_settings().data_dir
    return spawn_agent(handoff_text, template, cwd, Path(data_dir) / "spawn-logs")
