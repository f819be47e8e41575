"""The command line: the only place that knows click, exit codes and messages.

Exit status: 0 done (every way of stopping a recording is a success), 1 runtime error
(a device or a disk failed), 2 usage error (an argument, a path, a format), 130 when
interrupted before a recording began. Every error is one line on stderr; set
DICTAPHONE_TRACEBACK=1 to see the Python traceback instead.

Audio modules (numpy, sounddevice, soundfile, rich) are imported inside the commands,
so ``dictaphone --help`` stays fast.
"""

from __future__ import annotations

import os
import sys

import click

from ..errors import DictaphoneError
from . import clips_cmd, control_cmd, edit_cmd, record_cmd, serve_cmd, speakers_cmd, system_cmd, transcribe_cmd  # noqa: F401  (register commands)
from .app import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, cli, fail, one_line, say

__all__ = ["cli", "main"]


def _release_names() -> None:
    """The clip names a recording held (library.clips' claims), given back."""
    clips = sys.modules.get("dictaphone.library.clips")
    if clips is not None:
        clips.release_claims()


def main(argv=None) -> None:
    """Entry point: run the CLI, turning every error into one line and an exit status."""
    debug = os.environ.get("DICTAPHONE_TRACEBACK") == "1"
    if argv is None:  # the program itself (python -m dictaphone catches them earlier still)
        from ..stopsignals import catch_early

        catch_early()
    try:
        cli.main(args=argv, prog_name="dictaphone", standalone_mode=False)
    except record_cmd.RecordingDone as done:
        if argv is None:  # the program itself, not a caller in the same process
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass  # a terminal that hung up, a closed pipe: nobody to tell
            _release_names()  # (os._exit skips atexit)
            os._exit(done.code)
        raise
    except click.exceptions.Abort:
        say("dictaphone: aborted")
        raise SystemExit(EXIT_INTERRUPTED)
    except click.ClickException as e:  # usage errors: one line, exit 2
        # One prefix for every error, click's and ours ("dictaphone: error:"); which
        # command it was is in the hint, where it helps.
        message = one_line(e.format_message())
        ctx = getattr(e, "ctx", None)
        if isinstance(e, click.UsageError) and ctx is not None:
            message = message.rstrip(".")
            command = ctx.command_path.replace(ctx.find_root().info_name or "", "dictaphone", 1)
            if "unexpected extra argument" in message:
                message += (f"; a name with spaces is one argument: quote it ('live test'), "
                            f"see '{command} --help'")
            else:
                message += f" (see '{command} --help')"
        say(f"dictaphone: error: {message}")
        raise SystemExit(e.exit_code)
    except DictaphoneError as e:
        if debug:
            raise
        fail(str(e), EXIT_USAGE if e.usage else EXIT_ERROR)
    except KeyboardInterrupt:
        say("dictaphone: interrupted")
        raise SystemExit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # stdout's reader went away (e.g. `dictaphone formats | head -1`): not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(EXIT_OK)
    except OSError as e:
        if debug:
            raise
        fail(_os_error(e), EXIT_ERROR)


def _os_error(e: OSError) -> str:
    """An OSError no command put in words, with the path it is about ('Read-only file
    system' alone does not say where): a hidden temporary file of dictaphone's own
    (``.dictaphone-*``) is named by its directory, which the user knows."""
    why = e.strerror or str(e)
    if not isinstance(e.filename, str) or not e.filename or not e.strerror:
        return why
    where = e.filename
    if os.path.basename(where).startswith(".dictaphone-"):
        where = os.path.dirname(where) or "."
    return f"{where}: {why[:1].lower()}{why[1:]}"


if __name__ == "__main__":
    main()
