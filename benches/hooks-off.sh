#!/usr/bin/env bash
# Compile the operations hooks out of the engine in the work tree given
# (required: never this one by default): the capture, live-trace and flow-log checks on the
# packet path become the constant `false`, so the compiler removes them
# and their bodies. Used as the "before" side of
#
#   BEFORE_EDIT=benches/hooks-off.sh benches/compare.sh HEAD [BENCH...]
#
# which measures, in one run, what the hooks cost when they are off (the
# shipped engine) against an engine that has none. Never applied to a
# tree that is built for use. Fails if a hook it knows is not found, so
# that a renamed hook cannot make the comparison silently equal.
set -euo pipefail
tree=${1:?usage: benches/hooks-off.sh WORKTREE (a throwaway checkout, as compare.sh makes)}
edit() { # file old new
    local f="$tree/$1"
    if ! grep -qF -- "$2" "$f"; then
        echo "hooks-off.sh: \`$2\` not found in $1" >&2
        exit 1
    fi
    OLD="$2" NEW="$3" perl -0pi -e 's/\Q$ENV{OLD}\E/$ENV{NEW}/g' "$f"
}
e=dataplane/src/engine
edit $e/mod.rs 'if self.st.capture.is_some() {' 'if false {'
edit $e/mod.rs 'let tracing = cx.st.live.is_some();' 'let tracing = false;'
edit $e/mod.rs 'if cx.st.capture.is_some() {' 'if false {'
edit $e/mod.rs 'if self.flow_log.is_some() {' 'if false {'
edit $e/inspect.rs 'let logging = cx.st.flow_log.is_some();' 'let logging = false;'
edit $e/inspect.rs 'if reqs.is_empty() || cx.st.flow_log.is_none() {' 'if true {'
