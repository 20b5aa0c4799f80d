"""One command-line vocabulary for ``drc-launch``, ``drc-decompose`` and ``drc-search``.

Shared flags have one name and help (:data:`SHARED`); a :class:`~drc_jax.errors.UserError` exits 2
with one ``error:`` paragraph (:func:`run`).
"""

from __future__ import annotations

import http.client
import os
import socket
import stat
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from absl import app, flags

from drc_jax import defaults
from drc_jax.errors import UserError
from drc_jax.untrusted import printable

EXIT_USER_ERROR = 2


@dataclass(frozen=True)
class Shared:
    """A flag shared by several commands: its absl kind, help text and allowed values."""

    kind: str  # "string" | "enum" | "integer" | "bool"
    help: str
    choices: tuple[str, ...] = ()


SHARED: dict[str, Shared] = {
    "weights": Shared(
        "string",
        "CLIP weights: a Hugging Face directory, a hub id (openai/clip-vit-base-patch32), an "
        "OpenAI .pt/.safetensors file, or random:<backbone> (tests only).",
    ),
    "dtype": Shared("enum", "Compute dtype of the CLIP encoders.", defaults.DTYPES),
    "preprocess": Shared(
        "enum",
        "Image preprocessing: spacevlm squashes to 224x224, openai resizes and centre-crops.",
        defaults.PREPROCESS_MODES,
    ),
    "batch_size": Shared("integer", "Items per batch."),
    "cache_dir": Shared(
        "string",
        "Cache root (converted weights, embeddings, LLM decompositions under decompositions/); "
        "'' turns caching off. Default: $DRC_JAX_CACHE or ~/.cache/drc_jax.",
    ),
    "decomposer": Shared(
        "enum",
        "How queries are split into aff/neg/cf + strength: rules (offline) or sglang (an LLM "
        "behind an SGLang server).",
        defaults.DECOMPOSERS,
    ),
    "sglang_url": Shared("string", "SGLang server (--decomposer sglang)."),
    "sglang_model": Shared("string", "Model the SGLang server serves (--decomposer sglang)."),
    "progress": Shared("bool", "Show progress bars."),
}

# Old spelling -> shared name; honoured with a warning for one release.
DEPRECATED: dict[str, str] = {
    "backend": "decomposer",
    "url": "sglang_url",
    "model": "sglang_model",
    "batch": "batch_size",
}

# base_config's defaults (a test keeps them equal) for commands that start without JAX.
DEFAULTS = {
    "dtype": "float32",
    "preprocess": "spacevlm",
    "cache_dir": str(defaults.cache_root()),
    "decomposer": "rules",
    "sglang_url": defaults.SGLANG_URL,
    "sglang_model": defaults.SGLANG_MODEL,
    "progress": True,
}


def define(*names: str, help_suffix: dict[str, str] | None = None, **default) -> None:
    """Define the shared flags ``names`` (default :data:`DEFAULTS`) and their old spellings."""
    help_suffix = help_suffix or {}
    for name in names:
        spec = SHARED[name]
        value = default.get(name, DEFAULTS.get(name))
        text = spec.help + (f" {help_suffix[name]}" if name in help_suffix else "")
        _define(spec, name, value, text)
        for old, new in DEPRECATED.items():
            if new == name:
                _define(spec, old, None, f"Deprecated spelling of --{new}.")


def define_multihost() -> None:
    """The flags that join a multi-host run through ``jax.distributed`` (launch, search index)."""
    flags.DEFINE_string("coordinator_address", None, "Multi-host: jax.distributed coordinator.")
    flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
    flags.DEFINE_integer("process_id", None, "Multi-host: this process's id.")


def _define(spec: Shared, name: str, value, text: str) -> None:
    if spec.kind == "enum":
        flags.DEFINE_enum(name, value, list(spec.choices), text)
    else:
        getattr(flags, f"DEFINE_{spec.kind}")(name, value, text)


def deprecated_flag(name: str, advice: str) -> None:
    """Register the caller's ``--name`` as deprecated: given, it warns with ``advice``."""
    _DEPRECATED_FLAGS[name] = advice


_DEPRECATED_FLAGS: dict[str, str] = {}


def apply_deprecated(values: flags.FlagValues = flags.FLAGS) -> None:
    """Copy each deprecated flag given into its new name, warning; a conflict is a UserError."""
    for old, new in DEPRECATED.items():
        if old not in values or new not in values or not values[old].present:
            continue
        print(
            f"warning: --{old} is deprecated and will be removed in the next release; use --{new}.",
            file=sys.stderr,
        )
        given = values[old].value
        if values[new].present and values[new].value != given:
            raise UserError(
                f"--{old}={given} (the old spelling of --{new}) and --{new}={values[new].value} "
                f"disagree; pass --{new} only."
            )
        values[new].value = given
        values[new].present = 1
    for name, advice in _DEPRECATED_FLAGS.items():
        if name in values and values[name].present:
            print(f"warning: --{name} is deprecated; {advice}", file=sys.stderr)


def fail(message: str) -> None:
    """Print ``error: message`` on stderr and exit with status 2."""
    print(f"error: {printable(message, newlines=True)}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, bad flags as user errors; then the deprecated spellings applied."""
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        fail(f"{e}. Pass --helpshort (or --helpfull) for the flags and their values.")
    try:
        apply_deprecated(flags.FLAGS)
    except UserError as e:
        fail(str(e))
    return rest


def show_in_help(module_name: str) -> None:
    """List ``module_name``'s flags in ``--help`` when it runs as a console script (absl lists
    those of the module named by ``sys.argv[0]``, which is then the script, not the module)."""
    program = sys.argv[0]
    if module_name in ("__main__", program):
        return
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(program, flag)


def run(
    main: Callable[[list[str]], int],
    user_errors: tuple[type[BaseException], ...] = (),
    module_name: str = "__main__",
    argv: list[str] | None = None,
    flags_parser: Callable[[list[str]], list[str]] = parse_flags,
):
    """``app.run(main)`` where :class:`UserError` and ``user_errors`` exit 2 with their message;
    ``module_name`` (the CLI's module) has its flags listed by ``--help``."""
    show_in_help(module_name)

    def wrapped(argv: list[str]) -> int:
        try:
            return main(argv)
        except (UserError, *user_errors) as e:
            print(f"error: {printable(e, newlines=True)}", file=sys.stderr)
            return EXIT_USER_ERROR

    app.run(wrapped, argv=argv, flags_parser=flags_parser)


def sglang_decomposer(cache_dir: str, folder: str | None = None, **options):
    """``get_decomposer("sglang", **options)`` caching under ``<cache_dir>/decompositions`` (or
    ``folder``); a cache folder that cannot be made is a :class:`UserError`."""
    from drc_jax.decompose import get_decomposer

    where = (
        folder
        if folder is not None
        else str(defaults.cache_path(defaults.DECOMPOSITIONS, cache_dir) or "")
    )
    try:
        return get_decomposer("sglang", cache_dir=where, **options)
    except OSError as e:
        raise UserError(
            f"--cache_dir {cache_dir}: cannot keep the decomposition cache in {where} "
            f"({e.strerror or e}); pass another --cache_dir, or --cache_dir '' to turn it off."
        ) from e


def check_folders(flag: str, folders: list[str]) -> list[Path]:
    """Each of ``folders`` (given as ``--flag``) exists and is a folder."""
    if not folders:
        raise UserError(f"--{flag} is required: the folder(s) to read.")
    out = []
    for f in folders:
        p = Path(f).expanduser()
        if not p.exists():
            raise UserError(
                f"--{flag} {f}: no such folder. Check the path (relative paths are taken from "
                "the current directory)."
            )
        if not p.is_dir():
            raise UserError(f"--{flag} {f}: is a file, not a folder; pass the folder holding it.")
        out.append(p)
    return out


def read_text_file(flag: str, path: str, max_bytes: int) -> str:
    """The UTF-8 text of ``--flag path``: a regular file (never a FIFO or device, which could
    block or never end) of at most ``max_bytes``."""
    where = f"--{flag} {path}"
    try:
        fd = os.open(Path(path).expanduser(), os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise UserError(f"{where}: cannot read it ({e.strerror or e}).") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{where}: not a regular file (a FIFO, device or folder); pass a file.")
        if st.st_size > max_bytes:
            raise UserError(
                f"{where}: {st.st_size} bytes, more than the {max_bytes} a file of one item per "
                "line may hold here; split it."
            )
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UserError(f"{where}: grew past {max_bytes} bytes while read; split it.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{where}: not UTF-8 text ({e}).") from e


def check_writable_dir(flag: str, path: str) -> Path:
    """``--flag path`` can be created (or is already) a folder."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UserError(f"--{flag} {path}: is a file, not a folder; pass a folder path.")
    parent = next((a for a in [p, *p.parents] if a.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UserError(f"--{flag} {path}: {parent} is a file, so no folder can be made there.")
    return p


def check_port(host: str, port: int) -> None:
    """``--host``/``--port`` can be bound now (not taken, a valid port, a local address)."""
    if not 0 < port < 65536:
        raise UserError(f"--port {port}: not a TCP port (1-65535).")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
    except OSError as e:
        raise UserError(
            f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); the port may "
            "be taken by another server: pass another --port."
        ) from e


WEIGHTS_ADVICE = (
    "Pass a Hugging Face CLIP directory (config.json + model.safetensors), an OpenAI "
    ".pt/.safetensors file, or a hub id that this machine can download."
)
RANDOM_ADVICE = f"Or pass --weights {defaults.SYNTHETIC_WEIGHTS} to try it with random weights."


def load_clip_checked(weights: str, dtype: str):
    """:func:`drc_jax.clip.load_clip`, a load failure raised as a :class:`UserError` with advice."""
    from drc_jax.clip import load_clip
    from drc_jax.clip.load import WeightsUnavailableError

    try:
        return load_clip(weights, dtype=dtype)
    except WeightsUnavailableError as e:
        raise UserError(f"--weights {weights}: {e} {RANDOM_ADVICE}") from e
    except (OSError, ValueError, ImportError, RuntimeError) as e:
        raise UserError(
            f"--weights {weights}: cannot load these CLIP weights ({type(e).__name__}: {e}). "
            f"{WEIGHTS_ADVICE} {RANDOM_ADVICE}"
        ) from e


def check_sglang_url(url: str) -> None:
    """``--sglang_url`` is an http(s) URL (no network)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UserError(
            f"--sglang_url {url}: not an http(s) URL; pass e.g. --sglang_url {defaults.SGLANG_URL}."
        )


def check_sglang_server(url: str, model: str, timeout_s: float = 5.0) -> None:
    """The SGLang server at ``url`` answers HTTP (any status) within ``timeout_s`` in all (a
    server trickling its headers is cut off): checked before loading weights."""
    from drc_jax.decompose import transport

    check_sglang_url(url)
    try:
        transport.request("GET", url.rstrip("/") + "/v1/models", None, {}, timeout_s, 1 << 20)
    except transport.BodyTooLarge:
        return  # it answered
    except transport.DeadlineExceeded as e:
        raise UserError(
            f"--decomposer sglang: the server at {url} did not answer /v1/models within "
            f"{timeout_s:g} s. Check that it is an SGLang server and not overloaded, pass "
            "--sglang_url where it runs, or use --decomposer rules (offline)."
        ) from e
    except (OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise UserError(
            f"--decomposer sglang: cannot reach the SGLang server at {url} ({reason}). Start it "
            f"with `python -m launch.serve_sglang --model {model}`, pass --sglang_url where it "
            "runs, or use --decomposer rules (offline)."
        ) from e
