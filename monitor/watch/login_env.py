"""The environment the user's next login will have: PATH, LD_LIBRARY_PATH, CUDA_*, TF_*...

The environment trigger compares these effective values, not file timestamps, so a touched or
reformatted file is no change and an edit that moves /usr/local/cuda-11.8 ahead of 12.4 is.

Linux, in login order (each step sees what the earlier ones set):
1. PAM (pam_env): /etc/security/pam_env.conf, /etc/environment, ~/.pam_environment.
2. systemd's environment.d: *.conf under /usr/lib, /usr/local/lib, /run, /etc and
   ~/.config (a file name in a later directory hides the same name in an earlier one; all
   files apply in name order), with $VAR / ${VAR:-default} / ${VAR:+alternative}.
3. The login shell: /etc/profile, /etc/profile.d/*.sh, the first of ~/.bash_profile,
   ~/.bash_login, ~/.profile, then ~/.bashrc (what every terminal reads).

Shell files are read, never run. Running them would give the truth, but a daemon that executes
the user's dotfiles whenever one changes (conda hooks, ssh-agent, network calls, `exec zsh`)
surprises people and has side effects; the lines that set these variables are nearly always
plain assignments. Understood: `[export] NAME=value`, `export NAME`, `unset`, `set -a`,
`. file` / `source file` (absolute paths, each file once), and if / elif / else, && and ||
over simple tests (`[ -d path ]`, `[ -n "$X" ]`, `[ "$A" = b ]`), with quotes, ~, $NAME,
${NAME}, ${NAME:-x} and ${NAME:+x} expanded as the shell would. A condition that cannot be
known ($(...), -eq, case, loops, functions) counts as taken, so every branch applies in
order. $(...) and `...` stay in a value as written, so a change to them is still a change.
Paths that tests look at are sources too (creating ~/bin changes the login PATH). zsh and
fish files are not read.

Windows: the system key (HKLM\\...\\Session Manager\\Environment) then the user key
(HKCU\\Environment), plain values (REG_SZ) before expandable ones (REG_EXPAND_SZ, %VAR%)
in each, names case-insensitive, and the user's Path appended to the system's, as Windows
builds a new logon's environment.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from monitor.facts import syspath
from monitor.facts.paths import Root

WATCHED_NAMES = ("PATH", "LD_LIBRARY_PATH", "LD_PRELOAD", "CUDNN_PATH", "XLA_FLAGS")
WATCHED_PREFIXES = ("CUDA_", "TF_")  # CUDA_HOME, CUDA_PATH, CUDA_PATH_V12_4, TF_*...
# What login(1) and systemd give a session before any file is read; /etc/profile usually
# replaces it.
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

PAM_CONF = "/etc/security/pam_env.conf"
ETC_ENVIRONMENT = "/etc/environment"
ENVIRONMENT_D_DIRS = (  # lowest priority first
    "/usr/lib/environment.d",
    "/usr/local/lib/environment.d",
    "/run/environment.d",
    "/etc/environment.d",
)
ETC_PROFILE = "/etc/profile"
PROFILE_D = "/etc/profile.d"
LOGIN_PROFILES = (".bash_profile", ".bash_login", ".profile")  # bash reads the first found
_MAX_SOURCED_FILES = 64
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OS = "linux"


def is_watched(name: str) -> bool:
    """A variable that steers the GPU stack (case-sensitive: Windows names are upper-cased)."""
    return name in WATCHED_NAMES or name.startswith(WATCHED_PREFIXES)


@dataclass(frozen=True)
class LoginEnvironment:
    """The watched variables a new login gets, and what they were computed from.

    sources: every system path read or looked for (files that do not exist yet included, and
    the directories whose listing matters), in reading order: the watcher watches these.
    errors: (path, why) for files that exist but could not be read.
    """

    values: Mapping[str, str]
    sources: tuple[str, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()


def effective_login_environment(root: Root, home: str) -> dict[str, str]:
    """The watched variables the user's next login gets (Linux); `home` is a system path."""
    return dict(login_environment(root, home).values)


def login_environment(root: Root, home: str) -> LoginEnvironment:
    reader = _Reader(root, home)
    env: dict[str, str] = {"HOME": home, "PATH": DEFAULT_PATH}
    env = reader.pam(env)
    env = reader.environment_d(env)
    shell = ShellState(env=env, exported=set(env))
    reader.shell(shell)
    values = {
        name: value
        for name, value in shell.env.items()
        if name in shell.exported and is_watched(name)
    }
    sources = tuple(dict.fromkeys(reader.sources))
    return LoginEnvironment(dict(sorted(values.items())), sources, reader.errors)


# --------------------------------------------------------------------------- reading files


@dataclass
class _Reader:
    """Reads the login files under a root, remembering every path it consulted."""

    root: Root
    home: str
    sources: list[str] = field(default_factory=list)
    errors: tuple[tuple[str, str], ...] = ()

    def text(self, path: str) -> str | None:
        self.sources.append(path)
        text, error = syspath.read_text(self.root, path, _OS)
        if error:
            self.errors += ((path, error),)
        return text

    def listing(self, directory: str) -> list[str]:
        self.sources.append(directory)
        return syspath.list_dir(self.root, directory, _OS)

    def pam(self, env: dict[str, str]) -> dict[str, str]:
        for path, conf_syntax in (
            (PAM_CONF, True),
            (ETC_ENVIRONMENT, False),
            (posixpath.join(self.home, ".pam_environment"), True),
        ):
            text = self.text(path)
            if text is None:
                continue
            env = (
                apply_pam_conf(text, env, self.home)
                if conf_syntax
                else apply_etc_environment(text, env)
            )
        return env

    def environment_d(self, env: dict[str, str]) -> dict[str, str]:
        chosen: dict[str, str] = {}
        for directory in (*ENVIRONMENT_D_DIRS, posixpath.join(self.home, ".config/environment.d")):
            for name in self.listing(directory):
                if name.endswith(".conf"):
                    chosen[name] = posixpath.join(directory, name)
        for name in sorted(chosen):
            text = self.text(chosen[name])
            if text is not None:
                env = apply_environment_d(text, env)
        return env

    def file_test(self, operator: str, path: str) -> bool:
        """`[ -d path ]` under the root; the path is watched too (its answer may change)."""
        self.sources.append(path)
        if operator in ("-L", "-h"):
            return os.path.islink(self.root.path(path))
        try:
            info = os.stat(syspath.real_path(self.root, path, _OS))
        except (OSError, ValueError):
            return False
        if operator == "-d":
            return stat.S_ISDIR(info.st_mode)
        if operator == "-f":
            return stat.S_ISREG(info.st_mode)
        return info.st_size > 0 if operator == "-s" else True

    def shell(self, state: ShellState) -> None:
        visited: set[str] = set()

        def source(path: str) -> None:
            if path in visited or len(visited) >= _MAX_SOURCED_FILES:
                return
            visited.add(path)
            text = self.text(path)
            if text is not None:
                run_shell_text(text, state, host)

        host = ShellHost(source=source, file_test=self.file_test)

        source(ETC_PROFILE)
        for name in self.listing(PROFILE_D):
            if name.endswith(".sh"):
                source(posixpath.join(PROFILE_D, name))
        for name in LOGIN_PROFILES:
            path = posixpath.join(self.home, name)
            if os.path.isfile(syspath.real_path(self.root, path, _OS)):
                source(path)
                break
            self.sources.append(path)
        source(posixpath.join(self.home, ".bashrc"))


# --------------------------------------------------------------------------- PAM


def apply_etc_environment(text: str, env: Mapping[str, str]) -> dict[str, str]:
    """/etc/environment as pam_env reads it: KEY=VALUE, no expansion, a `#` ends the value.

    An optional `export ` is skipped; one pair of surrounding quotes is removed; a bare KEY
    unsets it.
    """
    result = dict(env)
    for line in _pam_lines(text):
        line = line.removeprefix("export ")
        key, equals, value = line.partition("=")
        if not _NAME.fullmatch(key):
            continue
        if not equals:
            result.pop(key, None)
            continue
        if value[:1] in ('"', "'"):
            value = value[1:]
            if value[-1:] in ('"', "'"):
                value = value[:-1]
        result[key] = value
    return result


def apply_pam_conf(text: str, env: Mapping[str, str], home: str) -> dict[str, str]:
    """pam_env.conf syntax (also ~/.pam_environment): `NAME [DEFAULT=v] [OVERRIDE=v]`.

    ${VAR} is the environment so far, @{HOME} the user's home. A non-empty OVERRIDE wins, then
    DEFAULT; neither unsets. `DEFAULT=""` sets an empty value, `DEFAULT=` unsets. A line with
    anything else is ignored, as pam_env does.
    """
    result = dict(env)
    for line in _pam_lines(text):
        parsed = _pam_conf_line(line)
        if parsed is None:
            continue
        name, default, override = parsed
        override = None if override is None else _pam_expand(override, result, home)
        default = None if default is None else _pam_expand(default, result, home)
        if override:
            result[name] = override
        elif default is not None:
            result[name] = default
        else:
            result.pop(name, None)
    return result


def _pam_lines(text: str) -> list[str]:
    """Lines with `#` comments cut, trailing backslashes joined, blank lines dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.lstrip(" \t")
        if not pending and (not line or line.startswith("#")):
            continue
        line = line.partition("#")[0]
        stripped = line.rstrip(" \t")
        if stripped.endswith("\\"):
            pending += stripped[:-1]
            continue
        line, pending = pending + line, ""
        if line.strip():
            lines.append(line)
    if pending.strip():
        lines.append(pending)
    return lines


def _pam_conf_line(line: str) -> tuple[str, str | None, str | None] | None:
    stripped = line.strip()
    name = re.split(r"[ \t]", stripped, maxsplit=1)[0]
    rest = stripped[len(name) :]
    values: dict[str, str | None] = {"DEFAULT": None, "OVERRIDE": None}
    while rest.strip():
        rest = rest.lstrip(" \t")
        option, equals, rest = rest.partition("=")
        if not equals or option not in values:
            return None
        if rest.startswith('"'):
            value, quote, rest = rest[1:].partition('"')
            if not quote or rest[:1] not in ("", " ", "\t"):
                return None
        else:
            value = re.split(r"[ \t]", rest, maxsplit=1)[0]
            rest = rest[len(value) :]
            if not value:
                continue  # `DEFAULT=` with nothing: no value
        values[option] = value
    return name, values["DEFAULT"], values["OVERRIDE"]


def _pam_expand(value: str, env: Mapping[str, str], home: str) -> str:
    """${VAR} from the environment so far, @{HOME}; \\$ and \\@ are literal."""
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "\\" and value[i + 1 : i + 2] in ("$", "@"):
            out.append(value[i + 1])
            i += 2
        elif char in "$@" and value[i + 1 : i + 2] == "{" and "}" in value[i + 2 :]:
            end = value.index("}", i + 2)
            name = value[i + 2 : end]
            if char == "$":
                out.append(env.get(name, ""))
            elif name == "HOME":
                out.append(home)
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


# --------------------------------------------------------------------------- environment.d


def apply_environment_d(text: str, env: Mapping[str, str]) -> dict[str, str]:
    """One systemd environment.d file: KEY=VALUE lines, quotes removed, then $VAR expanded."""
    result = dict(env)
    for line in _continued_lines(text):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, equals, value = line.partition("=")
        key = key.strip()
        if not equals or not _NAME.fullmatch(key):
            continue
        result[key] = expand_dollars(_unquote_env_value(value.strip()), result)
    return result


def _continued_lines(text: str) -> list[str]:
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.endswith("\\") and not raw.lstrip().startswith(("#", ";")):
            pending += raw[:-1]
            continue
        lines.append(pending + raw)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def _unquote_env_value(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char == "'":
            end = value.find("'", i + 1)
            end = len(value) if end < 0 else end
            out.append(value[i + 1 : end])
            i = end + 1
        elif char == '"':
            i += 1
            while i < len(value) and value[i] != '"':
                if value[i] == "\\" and i + 1 < len(value):
                    i += 1
                out.append(value[i])
                i += 1
            i += 1
        elif char == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


# --------------------------------------------------------------------------- $ expansion


def expand_dollars(text: str, env: Mapping[str, str]) -> str:
    """$NAME, ${NAME}, ${NAME:-x}, ${NAME-x}, ${NAME:+x}, ${NAME+x}; anything else verbatim."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$":
            expansion, i = _dollar(text, i, env, expand_dollars)
            out.append(expansion)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


_Expand = Callable[[str, Mapping[str, str]], str]


def _dollar(text: str, i: int, env: Mapping[str, str], expand: _Expand) -> tuple[str, int]:
    """The expansion of the `$` at text[i] and the index after it. $( ), $(( )) and what is
    not understood stay verbatim; `expand` expands the word in ${NAME:-word}."""
    following = text[i + 1 : i + 2]
    if following == "{":
        end = _matching(text, i + 1, "{", "}")
        inner = text[i + 2 : end]
        return _braced(inner, env, expand, text[i : end + 1]), end + 1
    if following == "(":
        end = _matching(text, i + 1, "(", ")")
        return text[i : end + 1], end + 1
    match = _NAME.match(text, i + 1)
    if match:
        return env.get(match.group(0), ""), match.end()
    return "$", i + 1


_BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+=?])(.*))?", re.DOTALL)


def _braced(inner: str, env: Mapping[str, str], expand: _Expand, verbatim: str) -> str:
    match = _BRACED.fullmatch(inner)
    if not match:
        return verbatim  # ${#NAME}, ${NAME%pattern}, ${1}...
    name, operator, word = match.groups()
    value = env.get(name)
    if operator is None:
        return value or ""
    empty_counts = operator.startswith(":")
    is_set = value is not None and (value != "" or not empty_counts)
    if operator.endswith("+"):
        return expand(word, env) if is_set else ""
    if operator.endswith("?"):
        return value or ""
    return value if is_set and value is not None else expand(word, env)


def _matching(text: str, start: int, opening: str, closing: str) -> int:
    """Index of the bracket closing the one at text[start] (quotes respected); the last
    index when it never closes."""
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "'" and opening == "(":
            i = _end_of_quote(text, i, "'")
        elif char == '"':
            i = _end_of_quote(text, i, '"')
        elif char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(text) - 1


def _end_of_quote(text: str, start: int, quote: str) -> int:
    i = start + 1
    while i < len(text) and text[i] != quote:
        i += 2 if text[i] == "\\" and quote == '"' else 1
    return min(i, len(text) - 1)


# --------------------------------------------------------------------------- shell files


@dataclass
class ShellState:
    """A shell's variables while it reads its startup files; `exported` go to programs."""

    env: dict[str, str]
    exported: set[str]
    allexport: bool = False

    def assign(self, name: str, value: str) -> None:
        self.env[name] = value
        if self.allexport:
            self.exported.add(name)


@dataclass(frozen=True)
class ShellHost:
    """What reading shell files needs from the machine.

    source(path): read `. path`; file_test("-d", path): the answer of `[ -d path ]`.
    """

    source: Callable[[str], None]
    file_test: Callable[[str, str], bool]


# A command's exit status as far as it is known: True success, False failure, None unknown.
Status = bool | None
FILE_TESTS = frozenset({"-d", "-f", "-e", "-r", "-w", "-x", "-s", "-L", "-h"})
_IGNORED_KEYWORDS = frozenset({"do", "while", "until", "{", "}", "done", "esac", "time"})


@dataclass
class _IfBlock:
    outer_active: bool
    decided: bool = False  # a branch whose condition surely held has run
    active: bool = False  # the branch being read runs


def run_shell_text(text: str, state: ShellState, host: ShellHost) -> None:
    """Apply what a shell file does to the variables (see the module docstring).

    if/elif/else follow simple tests ([ -d path ], [ -n "$X" ], [ "$A" = b ]); a condition
    that cannot be known runs every branch, so all their assignments apply in order.
    """
    reader = _ShellReader(state, host)
    for connector, words in shell_commands(text):
        reader.step(connector, words)


@dataclass
class _ShellReader:
    state: ShellState
    host: ShellHost
    blocks: list[_IfBlock] = field(default_factory=list)
    status: Status = True
    in_condition: bool = False

    @property
    def active(self) -> bool:
        """Whether the command being read runs (a condition: whether it is evaluated)."""
        if not self.blocks:
            return True
        block = self.blocks[-1]
        return block.outer_active if self.in_condition else block.active

    def step(self, connector: str, words: list[str]) -> None:
        words = self._control(words)
        while words and words[0] in _IGNORED_KEYWORDS:
            words = words[1:]
        negate = words[:1] == ["!"]
        words = words[1:] if negate else words
        if not words or not self.active:
            return
        if (connector == "&&" and self.status is False) or (
            connector == "||" and self.status is True
        ):
            return  # skipped: the status stays what it was
        status = self._run(words)
        self.status = None if status is None else status != negate

    def _control(self, words: list[str]) -> list[str]:
        """Handle a leading if / elif / then / else / fi; the words after it remain."""
        while words and words[0] in ("if", "elif", "then", "else", "fi"):
            keyword, words = words[0], words[1:]
            if keyword == "if":
                self.in_condition = False
                self.blocks.append(_IfBlock(outer_active=self.active))
            if not self.blocks:
                continue  # a stray keyword: nothing to close or switch
            block = self.blocks[-1]
            if keyword in ("if", "elif"):
                block.active = False
                self.in_condition, self.status = True, True
            elif keyword == "then":
                runs = block.outer_active and not block.decided and self.status is not False
                block.active = runs
                block.decided = block.decided or (runs and self.status is True)
                self.in_condition = False
            elif keyword == "else":
                block.active = block.outer_active and not block.decided
            else:
                self.blocks.pop()
        return words

    def _run(self, words: list[str]) -> Status:
        command, arguments = words[0], words[1:]
        if command in ("[", "[[", "test"):
            return evaluate_test(words, self.state.env, self.host.file_test)
        if command in ("true", ":"):
            return True
        if command == "false":
            return False
        if self.in_condition:
            return None  # a command we do not run: its status is unknown
        if command in ("export", "declare", "typeset", "readonly", "local"):
            _declare(command, arguments, self.state)
        elif command == "unset":
            if "-f" in arguments:
                return True  # functions, not variables
            for name in arguments:
                self.state.env.pop(name, None)
                self.state.exported.discard(name)
        elif command == "set":
            _set_options(arguments, self.state)
        elif command in (".", "source") and arguments:
            path = _known_word(arguments[0], self.state.env)
            if path is None or not path.startswith("/"):
                return None
            self.host.source(posixpath.normpath(path))
        elif all(_assignment(word) for word in words):
            for word in words:  # NAME=value...: shell variables (PATH stays exported)
                name, value = _assignment(word) or ("", "")
                self.state.assign(name, expand_shell_word(value, self.state.env, True))
        else:
            return None
        return True


def shell_commands(text: str) -> list[tuple[str, list[str]]]:
    """(connector, words) of each simple command, words still quoted. The connector is what
    joins it to the one before: "&&", "||", "|", or ";" (also newlines, &, parentheses).
    Comments and line continuations are removed; $( ), ${ }, quotes stay inside words."""
    commands: list[tuple[str, list[str]]] = []
    words: list[str] = []
    word: list[str] = []
    connector = ";"
    i = 0

    def end_word() -> None:
        if word:
            words.append("".join(word))
            word.clear()

    while i < len(text):
        char = text[i]
        if char == "\\":
            word.append(text[i : i + 2] if text[i + 1 : i + 2] != "\n" else "")
            i += 2
        elif char in "'\"`":
            end = _single_quote_end(text, i) if char == "'" else _end_of_quote(text, i, char)
            word.append(text[i : end + 1])
            i = end + 1
        elif char == "$" and text[i + 1 : i + 2] in ("{", "("):
            pair = ("{", "}") if text[i + 1] == "{" else ("(", ")")
            end = _matching(text, i + 1, *pair)
            word.append(text[i : end + 1])
            i = end + 1
        elif char == "#" and not word:
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
        elif char in " \t":
            end_word()
            i += 1
        elif char in ";&|()\n":
            end_word()
            if words:
                commands.append((connector, words))
                words = []
            operator = text[i : i + 2]
            if operator in ("&&", "||"):
                connector, i = operator, i + 2
            else:
                connector, i = ("|" if char == "|" else ";"), i + 1
        else:
            word.append(char)
            i += 1
    end_word()
    if words:
        commands.append((connector, words))
    return commands


def _single_quote_end(text: str, start: int) -> int:
    end = text.find("'", start + 1)
    return len(text) - 1 if end < 0 else end


def evaluate_test(
    words: list[str], env: Mapping[str, str], file_test: Callable[[str, str], bool]
) -> Status:
    """`[ ... ]`, `[[ ... ]]`, `test ...` with one simple test, maybe negated; None when the
    test is not one of these or uses a value that is not known ($(...))."""
    closing = {"[": "]", "[[": "]]"}.get(words[0])
    if closing and words[-1] != closing:
        return None
    arguments = words[1:-1] if closing else words[1:]
    negate = arguments[:1] == ["!"]
    result = _test(arguments[1:] if negate else arguments, env, file_test, words[0] == "[[")
    return None if result is None else result != negate


def _test(
    arguments: list[str],
    env: Mapping[str, str],
    file_test: Callable[[str, str], bool],
    double_bracket: bool,
) -> Status:
    values = [_known_word(word, env) for word in arguments]
    if len(arguments) == 1:
        return None if values[0] is None else values[0] != ""
    if len(arguments) == 2 and values[1] is not None:
        operator, operand = arguments[0], values[1]
        if operator in ("-n", "-z"):
            return (operand == "") == (operator == "-z")
        if operator in FILE_TESTS and operand.startswith("/"):
            return file_test(operator, posixpath.normpath(operand))
        return None
    if len(arguments) == 3 and arguments[1] in ("=", "==", "!=") and not double_bracket:
        left, right = values[0], values[2]
        if left is None or right is None:
            return None
        return (left == right) == (arguments[1] != "!=")
    return None


def _known_word(word: str, env: Mapping[str, str]) -> str | None:
    """The word's value, or None when it runs a command ($( ) or `...`)."""
    return None if "$(" in word or "`" in word else expand_shell_word(word, env)


def _declare(command: str, arguments: list[str], state: ShellState) -> None:
    """export / declare / typeset / readonly (`local` only lives inside a function)."""
    if command == "local":
        return
    flags = "".join(word[1:] for word in arguments if word.startswith(("-", "+")))
    export = "n" not in flags if command == "export" else "x" in flags
    for word in arguments:
        assignment = _assignment(word)
        if word.startswith(("-", "+")) or not (assignment or _NAME.fullmatch(word)):
            continue
        name = assignment[0] if assignment else word
        if assignment:
            state.assign(name, expand_shell_word(assignment[1], state.env, assignment=True))
        if export:
            state.exported.add(name)
        elif command == "export":
            state.exported.discard(name)  # export -n


def _set_options(arguments: list[str], state: ShellState) -> None:
    for index, word in enumerate(arguments):
        if word in ("-o", "+o") and arguments[index + 1 : index + 2] == ["allexport"]:
            state.allexport = word == "-o"
        elif re.fullmatch(r"[-+][a-zA-Z]+", word) and "a" in word:
            state.allexport = word.startswith("-")


def _assignment(word: str) -> tuple[str, str] | None:
    match = _NAME.match(word)
    if match and word[match.end() : match.end() + 1] == "=":
        return match.group(0), word[match.end() + 1 :]
    return None


def expand_shell_word(word: str, env: Mapping[str, str], assignment: bool = False) -> str:
    """A shell word's value: quotes removed, ~ and $ expanded; $( ) and `...` kept verbatim.

    `assignment`: the value of NAME=value, where ~ also expands after each unquoted `:`.
    """
    out: list[str] = []
    i = 0
    at_start = True
    while i < len(word):
        char = word[i]
        if char == "~" and at_start and _tilde_ends(word, i + 1):
            out.append(env.get("HOME", "~"))
            i += 1
        elif char == "'":
            end = _single_quote_end(word, i)
            out.append(word[i + 1 : end])
            i = end + 1
        elif char == '"':
            end = _end_of_quote(word, i, '"')
            out.append(_expand_double_quoted(word[i + 1 : end], env))
            i = end + 1
        elif char == "`":
            end = _end_of_quote(word, i, "`")
            out.append(word[i : end + 1])
            i = end + 1
        elif char == "\\":
            out.append(word[i + 1 : i + 2])
            i += 2
        elif char == "$":
            expansion, i = _dollar(word, i, env, _expand_unquoted_word)
            out.append(expansion)
        else:
            out.append(char)
            i += 1
        at_start = assignment and char == ":"
    return "".join(out)


def _tilde_ends(word: str, i: int) -> bool:
    return i == len(word) or word[i] in "/:"


def _expand_unquoted_word(word: str, env: Mapping[str, str]) -> str:
    return expand_shell_word(word, env)


def _expand_double_quoted(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and text[i + 1 : i + 2] in ("$", "`", '"', "\\", "\n"):
            out.append("" if text[i + 1] == "\n" else text[i + 1])
            i += 2
        elif char == "$":
            expansion, i = _dollar(text, i, env, _expand_unquoted_word)
            out.append(expansion)
        elif char == "`":
            end = _end_of_quote(text, i, "`")
            out.append(text[i : end + 1])
            i = end + 1
        else:
            out.append(char)
            i += 1
    return "".join(out)


# --------------------------------------------------------------------------- Windows

# (value, expandable): expandable is REG_EXPAND_SZ, whose %VAR% Windows expands at logon.
RegistryValues = Mapping[str, tuple[str, bool]]
# Values Windows appends user to system instead of replacing (userenv).
_APPENDED = frozenset({"PATH", "LIBPATH", "OS2LIBPATH"})


def windows_login_environment(
    system: RegistryValues, user: RegistryValues, base: Mapping[str, str]
) -> dict[str, str]:
    """The watched variables of a new Windows logon, names upper-cased.

    base: what a logon has before the two keys (SystemRoot, ProgramFiles, USERPROFILE...),
    used for %VAR% expansion.
    """
    env: dict[str, tuple[str, str]] = {name.upper(): (name, value) for name, value in base.items()}
    for key, appends in ((system, False), (user, True)):
        for expandable in (False, True):
            for name, (raw, is_expandable) in key.items():
                if is_expandable != expandable:
                    continue
                value = expand_percent(raw, env) if expandable else raw
                if not value:
                    continue
                upper = name.upper()
                if appends and upper in _APPENDED and upper in env:
                    value = env[upper][1] + ";" + value
                env[upper] = (name, value)
    return {upper: value for upper, (_, value) in sorted(env.items()) if is_watched(upper)}


def expand_percent(text: str, env: Mapping[str, tuple[str, str]]) -> str:
    """%NAME% from `env` (keys upper-cased); an unknown %NAME% stays as written, as
    ExpandEnvironmentStrings leaves it."""
    out: list[str] = []
    i = 0
    while i < len(text):
        end = text.find("%", i + 1) if text[i] == "%" else -1
        if end < 0:
            out.append(text[i])
            i += 1
            continue
        known = env.get(text[i + 1 : end].upper())
        out.append(text[i : end + 1] if known is None else known[1])
        i = end + 1
    return "".join(out)
