# shellcheck shell=bash
# Throwaway accounts for the access-control tests, sourced after lib.sh.
#
# The script sets GROUPS_PLAN ("name:gid" each), USERS_PLAN ("name:uid:primary-gid:groups" each,
# or with a leading key field when ACCT_KEYED=1) and ACCT_MARK (the GECOS that marks its
# accounts), then calls acct_create.  Accounts left by an aborted run of the same script go
# first; anything else with those names or ids stops the test.  At exit the script's mounts are
# unmounted, exactly the accounts it created are removed, and lib.sh's cleanup runs.

# Split one USERS_PLAN entry into name, uid, pg, sup.
acct_fields() {
    if [ "${ACCT_KEYED:-0}" = 1 ]; then
        IFS=: read -r _ name uid pg sup <<< "$1"
    else
        IFS=: read -r name uid pg sup <<< "$1"
    fi
}

declare -a CREATED_USERS=() CREATED_GROUPS=()

acct_cleanup() {
    local u i
    for u in "${CREATED_USERS[@]}"; do
        userdel "$u" >/dev/null 2>&1 || echo "# WARNING: userdel $u failed" >&2
    done
    for ((i = ${#CREATED_GROUPS[@]} - 1; i >= 0; i--)); do
        groupdel "${CREATED_GROUPS[$i]}" >/dev/null 2>&1 \
            || echo "# WARNING: groupdel ${CREATED_GROUPS[$i]} failed" >&2
    done
    CREATED_USERS=()
    CREATED_GROUPS=()
}

acct_exit() {
    local rc=$? m
    for m in "${MOUNTED[@]}"; do
        mountinfo_has "$m" && fusermount3 -u "$m" 2>/dev/null
    done
    acct_cleanup
    (exit "$rc")
    _cleanup
}

acct_create() {
    local spec g gid name uid pg sup entry
    for spec in "${USERS_PLAN[@]}"; do
        acct_fields "$spec"
        entry=$(getent passwd "$name")
        if [ -n "$entry" ]; then
            [ "$(echo "$entry" | cut -d: -f5)" = "$ACCT_MARK" ] \
                || bail "user $name exists and is not this test's: not touching it"
            userdel "$name" || bail "cannot remove the leftover user $name"
        fi
        getent passwd "$uid" >/dev/null && bail "uid $uid is taken: not touching it"
    done
    for spec in "${GROUPS_PLAN[@]}"; do
        IFS=: read -r g gid <<< "$spec"
        entry=$(getent group "$g")
        if [ -n "$entry" ]; then
            [ "$(echo "$entry" | cut -d: -f3)" = "$gid" ] || bail "group $g exists with another gid"
            groupdel "$g" || bail "cannot remove the leftover group $g"
        fi
        getent group "$gid" >/dev/null && bail "gid $gid is taken: not touching it"
    done
    for spec in "${GROUPS_PLAN[@]}"; do
        IFS=: read -r g gid <<< "$spec"
        groupadd -g "$gid" "$g" || bail "groupadd $g failed"
        CREATED_GROUPS+=("$g")
    done
    for spec in "${USERS_PLAN[@]}"; do
        acct_fields "$spec"
        useradd -M -N -u "$uid" -g "$pg" ${sup:+-G "$sup"} -c "$ACCT_MARK" -s /usr/sbin/nologin \
            -d /nonexistent "$name" || bail "useradd $name failed"
        CREATED_USERS+=("$name")
    done
}

# as_user NAME CMD...: run CMD as NAME with its groups from the user database.
as_user() {
    local n=$1; shift
    setpriv --reuid="$n" --regid="$(id -g "$n")" --init-groups "$@"
}
trap acct_exit EXIT
