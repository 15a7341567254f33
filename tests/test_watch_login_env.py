"""The next login's environment computed from files laid out under a tmp root (and from
registry values fed in, for Windows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.facts.paths import Root
from monitor.watch.login_env import (
    DEFAULT_PATH,
    ShellHost,
    ShellState,
    apply_environment_d,
    apply_etc_environment,
    apply_pam_conf,
    effective_login_environment,
    evaluate_test,
    expand_shell_word,
    is_watched,
    login_environment,
    run_shell_text,
    windows_login_environment,
)

HOME = "/home/ana"

# Debian 12's /etc/profile and /etc/skel/.profile, as installed (comments trimmed).
DEBIAN_ETC_PROFILE = """\
if [ "$(id -u)" -eq 0 ]; then
  PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
else
  PATH="/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
fi
export PATH

if [ "${PS1-}" ]; then
  if [ "${BASH-}" ] && [ "$BASH" != "/bin/sh" ]; then
    # The file bash.bashrc already sets the default PS1.
    # PS1='\\h:\\w\\$ '
    if [ -f /etc/bash.bashrc ]; then
      . /etc/bash.bashrc
    fi
  else
    if [ "$(id -u)" -eq 0 ]; then
      PS1='# '
    else
      PS1='$ '
    fi
  fi
fi

if [ -d /etc/profile.d ]; then
  for i in /etc/profile.d/*.sh; do
    if [ -r $i ]; then
      . $i
    fi
  done
  unset i
fi
"""
DEBIAN_PROFILE = """\
# if running bash
if [ -n "$BASH_VERSION" ]; then
    # include .bashrc if it exists
    if [ -f "$HOME/.bashrc" ]; then
	. "$HOME/.bashrc"
    fi
fi

# set PATH so it includes user's private bin if it exists
if [ -d "$HOME/bin" ] ; then
    PATH="$HOME/bin:$PATH"
fi

# set PATH so it includes user's private bin if it exists
if [ -d "$HOME/.local/bin" ] ; then
    PATH="$HOME/.local/bin:$PATH"
fi
"""
DEBIAN_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
# NVIDIA's post-installation actions, as users paste them into ~/.bashrc.
NVIDIA_BASHRC = """\
export PATH=/usr/local/cuda-12.4/bin${PATH:+:${PATH}}
export LD_LIBRARY_PATH=/usr/local/cuda-12.4/lib64\\
                         ${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}
"""


class Machine:
    """A fake machine under tmp: write(system path, text) lays files out under its root."""

    def __init__(self, tmp_path: Path) -> None:
        self.base = tmp_path / "root"
        self.base.mkdir()
        self.root = Root(str(self.base))

    def write(self, system_path: str, text: str) -> Path:
        path = self.base / system_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def mkdir(self, system_path: str) -> None:
        (self.base / system_path.lstrip("/")).mkdir(parents=True, exist_ok=True)

    def env(self) -> dict[str, str]:
        return effective_login_environment(self.root, HOME)


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def shell(text: str, env: dict[str, str] | None = None, dirs: tuple[str, ...] = ()) -> ShellState:
    """Run `text` as a startup file; `dirs` are the directories `[ -d ]` finds."""
    start = {"HOME": HOME, "PATH": "/usr/bin:/bin", **(env or {})}
    state = ShellState(env=dict(start), exported=set(start))

    def file_test(operator: str, path: str) -> bool:
        return path in dirs

    run_shell_text(text, state, ShellHost(source=lambda path: None, file_test=file_test))
    return state


def exported(state: ShellState) -> dict[str, str]:
    return {name: state.env[name] for name in sorted(state.exported) if name in state.env}


# --------------------------------------------------------------------------- what is watched


@pytest.mark.parametrize(
    ("name", "watched"),
    [
        ("PATH", True),
        ("LD_LIBRARY_PATH", True),
        ("LD_PRELOAD", True),
        ("CUDA_HOME", True),
        ("CUDA_VISIBLE_DEVICES", True),
        ("CUDA_PATH_V12_4", True),
        ("CUDNN_PATH", True),
        ("TF_FORCE_GPU_ALLOW_GROWTH", True),
        ("XLA_FLAGS", True),
        ("HOME", False),
        ("EDITOR", False),
        ("path", False),
    ],
)
def test_watched_names(name: str, watched: bool) -> None:
    assert is_watched(name) is watched


# --------------------------------------------------------------------------- PAM


def test_etc_environment_is_read_as_pam_env_does() -> None:
    text = (
        "# comment\n"
        'PATH="/usr/local/cuda/bin:/usr/bin:/bin"\n'
        "export CUDA_HOME=/usr/local/cuda   # trailing comment\n"
        "LD_LIBRARY_PATH='$HOME/lib'\n"
        "not a line\n"
        "TF_CPP_MIN_LOG_LEVEL\n"
    )
    env = apply_etc_environment(text, {"TF_CPP_MIN_LOG_LEVEL": "2"})

    assert env == {
        "PATH": "/usr/local/cuda/bin:/usr/bin:/bin",
        "CUDA_HOME": "/usr/local/cuda   ",
        "LD_LIBRARY_PATH": "$HOME/lib",  # no expansion in /etc/environment
    }


def test_pam_environment_default_override_and_expansion() -> None:
    text = (
        "CUDA_HOME DEFAULT=/usr/local/cuda-12.4\n"
        "PATH DEFAULT=${PATH}:@{HOME}/bin\n"
        "XLA_FLAGS DEFAULT=--xla_gpu_cuda_data_dir=/usr/local/cuda OVERRIDE=${XLA_DIR}\n"
        'TF_ENABLE_ONEDNN_OPTS DEFAULT=""\n'
        "LD_PRELOAD\n"
        "CUDA_VISIBLE_DEVICES=0\n"  # KEY=VALUE is not this file's syntax: pam_env ignores it
        "TF_BAD DEFAULT=1 BOGUS=2\n"
    )
    env = apply_pam_conf(text, {"PATH": "/usr/bin", "LD_PRELOAD": "/lib/x.so"}, HOME)

    assert env == {
        "CUDA_HOME": "/usr/local/cuda-12.4",
        "PATH": "/usr/bin:/home/ana/bin",
        "XLA_FLAGS": "--xla_gpu_cuda_data_dir=/usr/local/cuda",  # empty OVERRIDE: DEFAULT
        "TF_ENABLE_ONEDNN_OPTS": "",
    }


def test_pam_environment_override_wins_and_escapes() -> None:
    text = 'CUDA_HOME DEFAULT=/a OVERRIDE="/opt/cuda \\${not}"\nTF_X DEFAULT=\n'
    env = apply_pam_conf(text, {"TF_X": "1"}, HOME)
    assert env == {"CUDA_HOME": "/opt/cuda ${not}"}


# --------------------------------------------------------------------------- environment.d


def test_environment_d_expands_what_came_before() -> None:
    text = (
        "# comment\n"
        "; also a comment\n"
        "CUDA_HOME=/usr/local/cuda-12.4\n"
        "PATH=$CUDA_HOME/bin:${PATH}\n"
        'LD_LIBRARY_PATH="${CUDA_HOME}/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"\n'
        "TF_CPP_MIN_LOG_LEVEL=${TF_LEVEL:-2}\n"
    )
    env = apply_environment_d(text, {"PATH": "/usr/bin"})

    assert env == {
        "PATH": "/usr/local/cuda-12.4/bin:/usr/bin",
        "CUDA_HOME": "/usr/local/cuda-12.4",
        "LD_LIBRARY_PATH": "/usr/local/cuda-12.4/lib64",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def test_environment_d_user_file_hides_the_system_one_of_that_name(machine: Machine) -> None:
    machine.write("/usr/lib/environment.d/50-cuda.conf", "CUDA_HOME=/usr/local/cuda-11.8\n")
    machine.write(f"{HOME}/.config/environment.d/50-cuda.conf", "CUDA_HOME=/opt/cuda-12\n")
    machine.write("/etc/environment.d/60-path.conf", "PATH=$CUDA_HOME/bin:$PATH\n")
    machine.write("/etc/environment.d/README", "PATH=/ignored\n")

    assert machine.env() == {
        "CUDA_HOME": "/opt/cuda-12",
        "PATH": f"/opt/cuda-12/bin:{DEFAULT_PATH}",
    }


# --------------------------------------------------------------------------- shell files


def test_nvidia_post_install_lines() -> None:
    state = shell(NVIDIA_BASHRC, env={"PATH": "/usr/bin:/bin"})
    assert exported(state)["PATH"] == "/usr/local/cuda-12.4/bin:/usr/bin:/bin"
    assert exported(state)["LD_LIBRARY_PATH"] == "/usr/local/cuda-12.4/lib64"


def test_assignment_forms_and_export_status() -> None:
    text = """
CUDA=/usr/local/cuda-12.4          # a shell variable, not exported
export CUDA_HOME="$CUDA"
export PATH="$CUDA/bin:$PATH"; LD_LIBRARY_PATH=$CUDA/lib64
export LD_LIBRARY_PATH
TF_CPP_MIN_LOG_LEVEL=3
declare -x XLA_FLAGS='--xla_gpu_cuda_data_dir=$CUDA'
readonly TF_READONLY=1
export -n TF_GONE
"""
    state = shell(text, env={"TF_GONE": "1"})

    assert exported(state) == {
        "CUDA_HOME": "/usr/local/cuda-12.4",
        "HOME": HOME,
        "LD_LIBRARY_PATH": "/usr/local/cuda-12.4/lib64",
        "PATH": "/usr/local/cuda-12.4/bin:/usr/bin:/bin",
        "XLA_FLAGS": "--xla_gpu_cuda_data_dir=$CUDA",
    }
    assert state.env["TF_CPP_MIN_LOG_LEVEL"] == "3", "set, but not exported"


def test_set_a_exports_everything_and_unset_removes() -> None:
    state = shell("set -a\nCUDA_HOME=/opt/cuda\nset +a\nTF_X=1\nunset PATH\n")
    assert exported(state) == {"CUDA_HOME": "/opt/cuda", "HOME": HOME}


def test_tilde_quotes_and_escapes() -> None:
    text = """
export PATH=~/bin:~/.local/bin:$PATH
export CUDA_HOME='/opt/$NOT/expanded'
export TF_A="a \\"quoted\\" \\$word"
export TF_B=a\\ b
"""
    state = shell(text)
    assert exported(state)["PATH"] == "/home/ana/bin:/home/ana/.local/bin:/usr/bin:/bin"
    assert exported(state)["CUDA_HOME"] == "/opt/$NOT/expanded"
    assert exported(state)["TF_A"] == 'a "quoted" $word'
    assert exported(state)["TF_B"] == "a b"


def test_command_substitution_stays_as_written() -> None:
    text = 'export PATH="$(python3 -m site --user-base)/bin:$PATH"\nexport TF_V=`date`\n'
    state = shell(text)
    assert exported(state)["PATH"] == "$(python3 -m site --user-base)/bin:/usr/bin:/bin"
    assert exported(state)["TF_V"] == "`date`"


def test_braced_expansions() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert expand_shell_word("${SET:-d}${UNSET:-d}${EMPTY:-d}${EMPTY-d}", env) == "xdd"
    assert expand_shell_word("${SET:+a}${UNSET:+a}${EMPTY:+a}${EMPTY+a}", env) == "aa"
    assert expand_shell_word("${#SET}${SET%x}", env) == "${#SET}${SET%x}"


def test_conditions_that_are_known_are_followed() -> None:
    text = """
if [ -d /usr/local/cuda-12.4 ]; then
    export CUDA_HOME=/usr/local/cuda-12.4
elif [ -d /usr/local/cuda-11.8 ]; then
    export CUDA_HOME=/usr/local/cuda-11.8
else
    export CUDA_HOME=/usr/local/cuda
fi
[ -d /opt/missing ] && export TF_MISSING=1
[ -d /opt/missing ] || export TF_OTHERWISE=1
if [ -n "$TF_OTHERWISE" ] && [ "$CUDA_HOME" = /usr/local/cuda-11.8 ]; then export TF_BOTH=1; fi
if ! test -d /opt/missing; then export TF_NOT=1; fi
"""
    state = shell(text, dirs=("/usr/local/cuda-11.8",))

    assert exported(state)["CUDA_HOME"] == "/usr/local/cuda-11.8"
    assert "TF_MISSING" not in state.env
    assert {"TF_OTHERWISE", "TF_BOTH", "TF_NOT"} <= state.exported


def test_unknown_conditions_run_every_branch_in_order() -> None:
    text = """
if [ "$(id -u)" -eq 0 ]; then
  export CUDA_HOME=/root-branch
  export TF_ROOT=1
else
  export CUDA_HOME=/user-branch
fi
case "$-" in *i*) export TF_INTERACTIVE=1 ;; esac
"""
    state = shell(text)
    assert exported(state)["CUDA_HOME"] == "/user-branch"
    assert {"TF_ROOT", "TF_INTERACTIVE"} <= state.exported


def test_nested_blocks_inside_a_false_branch_do_nothing() -> None:
    text = """
if [ -d /nope ]; then
  if [ -d /usr ]; then export TF_A=1; else export TF_B=1; fi
  export TF_C=1
fi
"""
    assert not {"TF_A", "TF_B", "TF_C"} & shell(text, dirs=("/usr",)).exported


def test_evaluate_test_forms() -> None:
    env = {"X": "a"}

    def file_test(operator: str, path: str) -> bool:
        return (operator, path) == ("-f", "/etc/x")

    assert evaluate_test(["[", "-f", "/etc/x", "]"], env, file_test) is True
    assert evaluate_test(["[", "-f", "/etc//x/", "]"], env, file_test) is True
    assert evaluate_test(["test", "-z", '"$X"'], env, file_test) is False
    assert evaluate_test(["[[", "$X", "]]"], env, file_test) is True
    assert evaluate_test(["[", "!", "$X", "=", "a", "]"], env, file_test) is False
    assert evaluate_test(["[", "-f", "relative", "]"], env, file_test) is None
    assert evaluate_test(["[", "-f", "/etc/x"], env, file_test) is None  # no closing ]
    assert evaluate_test(["[", "1", "-lt", "2", "]"], env, file_test) is None


# --------------------------------------------------------------------------- the whole login


def test_debian_defaults_give_debians_path(machine: Machine) -> None:
    machine.write("/etc/profile", DEBIAN_ETC_PROFILE)
    machine.write(f"{HOME}/.profile", DEBIAN_PROFILE)
    machine.write(f"{HOME}/.bashrc", "# nothing of ours\n")

    assert machine.env() == {"PATH": DEBIAN_PATH}


def test_creating_home_bin_adds_it_and_it_is_a_source(machine: Machine) -> None:
    machine.write("/etc/profile", DEBIAN_ETC_PROFILE)
    machine.write(f"{HOME}/.profile", DEBIAN_PROFILE)
    assert f"{HOME}/bin" in login_environment(machine.root, HOME).sources

    machine.mkdir(f"{HOME}/.local/bin")

    assert machine.env() == {"PATH": f"{HOME}/.local/bin:{DEBIAN_PATH}"}


def test_login_order(machine: Machine) -> None:
    machine.write("/etc/environment", "CUDA_HOME=/from/etc-environment\nTF_A=pam\n")
    machine.write(f"{HOME}/.pam_environment", "TF_B DEFAULT=${TF_A}-user\n")
    machine.write("/etc/environment.d/10-x.conf", "TF_C=${TF_B}-envd\n")
    machine.write("/etc/profile", "export PATH=/usr/bin:/bin\n")
    machine.write("/etc/profile.d/b.sh", "export TF_D=${TF_C}-b\n")
    machine.write("/etc/profile.d/a.sh", "export TF_D=a\nexport TF_E=a\n")
    machine.write("/etc/profile.d/c.txt", "export TF_IGNORED=1\n")
    machine.write(f"{HOME}/.profile", "export TF_F=profile\n")
    machine.write(f"{HOME}/.bashrc", NVIDIA_BASHRC + "export CUDA_HOME=/usr/local/cuda-12.4\n")

    assert machine.env() == {
        "CUDA_HOME": "/usr/local/cuda-12.4",
        "LD_LIBRARY_PATH": "/usr/local/cuda-12.4/lib64",
        "PATH": "/usr/local/cuda-12.4/bin:/usr/bin:/bin",
        "TF_A": "pam",
        "TF_B": "pam-user",
        "TF_C": "pam-user-envd",
        "TF_D": "pam-user-envd-b",
        "TF_E": "a",
        "TF_F": "profile",
    }


def test_bash_profile_hides_profile(machine: Machine) -> None:
    machine.write(f"{HOME}/.profile", "export TF_FROM=profile\n")
    machine.write(f"{HOME}/.bash_profile", "export TF_FROM=bash_profile\n")

    assert machine.env()["TF_FROM"] == "bash_profile"
    sources = login_environment(machine.root, HOME).sources
    assert f"{HOME}/.bash_login" not in sources and f"{HOME}/.profile" not in sources


def test_sourced_files_are_read_once_and_watched(machine: Machine) -> None:
    machine.write(f"{HOME}/.profile", '. "$HOME/.bashrc"\n')
    machine.write(f"{HOME}/.bashrc", '. ~/.cuda-env\nexport PATH="/extra:$PATH"\n')
    machine.write(f"{HOME}/.cuda-env", "export CUDA_HOME=/opt/cuda\n. ~/.cuda-env\n")
    machine.write("/etc/profile", "source /etc/missing.sh\n")

    result = login_environment(machine.root, HOME)

    assert result.values == {"CUDA_HOME": "/opt/cuda", "PATH": f"/extra:{DEFAULT_PATH}"}
    for path in (f"{HOME}/.cuda-env", "/etc/missing.sh", f"{HOME}/.pam_environment"):
        assert path in result.sources


def test_unreadable_file_is_an_error_not_a_crash(machine: Machine) -> None:
    machine.mkdir("/etc/environment")  # a directory where the file should be
    machine.write(f"{HOME}/.bashrc", "export CUDA_HOME=/opt/cuda\n")

    result = login_environment(machine.root, HOME)

    assert result.values == {"CUDA_HOME": "/opt/cuda", "PATH": DEFAULT_PATH}
    assert [path for path, _ in result.errors] == ["/etc/environment"]


def test_garbage_does_not_crash(machine: Machine) -> None:
    garbage = "if then fi else ${ $( ` ' \" \\\nexport\nexport =\n. \n}}}}\nfi fi fi\n"
    for path in ("/etc/environment", f"{HOME}/.pam_environment", f"{HOME}/.bashrc"):
        machine.write(path, garbage)
    machine.write("/etc/environment.d/x.conf", garbage)

    assert machine.env()["PATH"] == DEFAULT_PATH


def test_nothing_there_is_the_default_path(machine: Machine) -> None:
    assert machine.env() == {"PATH": DEFAULT_PATH}


# --------------------------------------------------------------------------- Windows


SYSTEM_ROOT_BASE = {"SystemRoot": "C:\\Windows", "USERPROFILE": "C:\\Users\\ana"}


def test_windows_user_path_comes_after_the_system_path() -> None:
    system = {
        "Path": ("%SystemRoot%\\system32;%CUDA_PATH%\\bin", True),
        "CUDA_PATH": ("C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.4", False),
        "CUDA_PATH_V12_4": ("C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.4", False),
        "TEMP": ("%SystemRoot%\\TEMP", True),
    }
    user = {
        "Path": ("%USERPROFILE%\\AppData\\Local\\Programs\\Python\\Python311", True),
        "TF_CPP_MIN_LOG_LEVEL": ("2", False),
    }

    env = windows_login_environment(system, user, SYSTEM_ROOT_BASE)

    cuda = "C:\\Program Files\\NVIDIA GPU Computing Toolkit\\CUDA\\v12.4"
    assert env == {
        "CUDA_PATH": cuda,
        "CUDA_PATH_V12_4": cuda,
        "PATH": (
            "C:\\Windows\\system32;"
            f"{cuda}\\bin;"
            "C:\\Users\\ana\\AppData\\Local\\Programs\\Python\\Python311"
        ),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def test_windows_plain_values_come_before_expandable_ones_in_each_key() -> None:
    # Enumeration order puts the expandable value first; Windows still sets CUDA_ROOT first.
    system = {"CUDA_HOME": ("%cuda_root%\\v12", True), "CUDA_ROOT": ("D:\\CUDA", False)}

    assert windows_login_environment(system, {}, {})["CUDA_HOME"] == "D:\\CUDA\\v12"


def test_windows_user_value_replaces_system_value_and_unknown_stays() -> None:
    system = {"CUDA_PATH": ("C:\\CUDA\\v11.8", False), "TF_EMPTY": ("x", False)}
    user = {
        "cuda_path": ("%NO_SUCH_VARIABLE%\\v12.4", True),
        "TF_EMPTY": ("", False),  # an empty value is skipped, as at logon
        "PATH": ("C:\\Tools", False),  # no system Path: the user's alone
    }

    env = windows_login_environment(system, user, {})

    assert env == {
        "CUDA_PATH": "%NO_SUCH_VARIABLE%\\v12.4",
        "PATH": "C:\\Tools",
        "TF_EMPTY": "x",
    }
