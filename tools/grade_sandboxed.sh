#!/usr/bin/env bash
# Grade students' notebooks inside a bubblewrap sandbox (Linux; Debian/Ubuntu: apt-get install bubblewrap).
#
#     tools/grade_sandboxed.sh SUBMISSIONS GRADES [options of tools/grade.py]
#     make grade-sandboxed SUBMISSIONS=folder [GRADES=_build/grades CHAPTERS=00,01 TIMEOUT=60 JOBS=1]
#
# Inside the sandbox: no network, an empty environment (nothing of yours: no tokens, no keys), a process
# tree of its own (everything it started dies with it), the system, Python and the course READ-ONLY, the
# submissions read-only at /submissions, a fresh tmpfs at /tmp, and nothing of your home folder. The only
# folder it can write is GRADES (at /grades). The Tiny Shakespeare corpus, if you have it ($COURSE_DATA_DIR
# or the course's cache folder), is mounted read-only at /data. docs/GRADING.md explains each option.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 SUBMISSIONS GRADES [options of tools/grade.py]" >&2
    exit 2
fi
BWRAP=$(command -v bwrap) || { echo "$0: bwrap is not installed (apt-get install bubblewrap)" >&2; exit 2; }
COURSE=$(cd "$(dirname "$0")/.." && pwd)
SUBMISSIONS=$(cd "$1" && pwd)
mkdir -p "$2"
GRADES=$(cd "$2" && pwd)
shift 2
PYTHON=${PYTHON:-$COURSE/.venv/bin/python}
PYTHON=$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")
PYTHON_HOME=$("$PYTHON" -c 'import sys; print(sys.base_prefix)')  # the interpreter behind a virtual environment
DATA=${COURSE_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-course}

system=(--ro-bind /usr /usr --ro-bind /etc /etc)
for top in /bin /sbin /lib /lib32 /lib64; do  # merged-/usr systems have symlinks here, older ones folders
    if [ -L "$top" ]; then system+=(--symlink "$(readlink "$top")" "$top")
    elif [ -d "$top" ]; then system+=(--ro-bind "$top" "$top"); fi
done
data=()
if [ -f "$DATA/tinyshakespeare.txt" ]; then data=(--ro-bind "$DATA" /data --setenv COURSE_DATA_DIR /data); fi

# --- the sandbox (docs/GRADING.md shows this command) ---
env -i "$BWRAP" \
    --unshare-all --die-with-parent --new-session --clearenv \
    "${system[@]}" \
    --ro-bind "$PYTHON_HOME" "$PYTHON_HOME" \
    --ro-bind "$COURSE" "$COURSE" \
    --ro-bind "$SUBMISSIONS" /submissions \
    --bind "$GRADES" /grades \
    "${data[@]}" \
    --proc /proc --dev /dev --tmpfs /tmp \
    --setenv PATH /usr/bin:/bin --setenv HOME /tmp --setenv LANG C.UTF-8 --setenv COURSE_OFFLINE 1 \
    --chdir "$COURSE" \
    "$PYTHON" tools/grade.py /submissions --out /grades "$@" || status=$?
echo "(/grades in the sandbox is $GRADES)"
exit "${status:-0}"
