#!/bin/sh
# The layers of the module (docs/internals.md): which
# folder may include which, and which library headers each folder may use.
# One TAP line per row of the two tables below; a "not ok" lists the
# offending #include lines as file:line.
#
# Folders: "glue" is the httpd module proper (mod_memds/mod_memds.c,
# memds_config.c, memds_status.c, memds_glue.h); every other folder is a
# directory of the core library (mod_memds/<name>/ or backends/).
top=${top_srcdir:-$(dirname "$0")/../..}

# ------------------------------------------------------------ project arrows
# folder    may include (its own folder is always allowed)
ARROWS='
glue        ds send push syncml email store backends util
ds          syncml email store backends util
send        ds syncml email store backends util
push        syncml store backends util
backends    util
syncml      util
store       util
email       util
util
'

# ------------------------------------------------------------ libraries
# name      header pattern (extended regex on the <name> of #include)        folders allowed
LIBS='
httpd       ^(httpd|http_[a-z_]+|ap_[a-z_]+|util_[a-z_]+|mod_[a-z_]+|mpm_[a-z_]+|scoreboard)\.h$   glue
libpq       ^(libpq-fe\.h|libpq/|pg_config)                                    store
libcurl     ^curl/                                                             backends
GMime       ^(gmime/|glib\.h|glib/|glib-object\.h)                             email
libxml2     ^libxml/                                                           util syncml email
'

# folder FILE: the folder name of a source file (relative to $top)
folder() {
    case $1 in
    mod_memds/*/*) f=${1#mod_memds/}; echo "${f%%/*}" ;;
    mod_memds/*) echo glue ;;
    backends/*) echo backends ;;
    *) echo other ;;
    esac
}

# every #include of the core and the glue: "FOLDER FILE:LINE KIND NAME",
# KIND q (quoted: a project header, NAME its folder) or s (<system>)
includes() {
    (cd "$top" && find mod_memds backends -name '*.[ch]' 2>/dev/null | sort) |
    while read -r f; do
        from=$(folder "$f")
        grep -n '^[[:space:]]*#[[:space:]]*include' "$top/$f" |
        sed -n -e 's/^\([0-9]*\):.*include[[:space:]]*"\([^"]*\)".*/\1 q \2/p' \
               -e 's/^\([0-9]*\):.*include[[:space:]]*<\([^>]*\)>.*/\1 s \2/p' |
        while read -r line kind name; do
            if [ "$kind" = q ]; then
                case $name in
                */*) to=$(folder "mod_memds/$name")
                     [ "${name%%/*}" = backends ] && to=backends ;;
                *) if [ -f "$top/$(dirname "$f")/$name" ]; then to=$from
                   elif [ -f "$top/mod_memds/$name" ]; then to=glue
                   else to=other; fi ;;
                esac
                echo "$from $f:$line q $to $name"
            else
                echo "$from $f:$line s $name"
            fi
        done
    done
}

all=$(includes)
n=$(printf '%s\n' "$ARROWS" "$LIBS" | grep -c '^[A-Za-z]')
echo "1..$n"
i=0

# project arrows: one check per folder
printf '%s\n' "$ARROWS" | while read -r from allowed; do
    [ -n "$from" ] || continue
    i=$((i + 1))
    bad=$(printf '%s\n' "$all" |
          awk -v from="$from" -v ok="$from $allowed" '
              BEGIN { n = split(ok, a, " "); for (k = 1; k <= n; k++) okf[a[k]] = 1 }
              $1 == from && $3 == "q" && !($4 in okf) {
                  print "#   " $2 " includes \"" $5 "\" (" $4 ")" }')
    if [ -z "$bad" ]; then
        echo "ok $i - $from includes only: $from${allowed:+ $allowed}"
    else
        echo "not ok $i - $from includes only: $from${allowed:+ $allowed}"
        printf '%s\n' "$bad"
    fi
done
i=$(printf '%s\n' "$ARROWS" | grep -c '^[A-Za-z]')

# libraries: one check per library
printf '%s\n' "$LIBS" | while read -r lib re allowed; do
    [ -n "$lib" ] || continue
    i=$((i + 1))
    bad=$(printf '%s\n' "$all" |
          re=$re awk -v ok="$allowed" '
              BEGIN { n = split(ok, a, " "); for (k = 1; k <= n; k++) okf[a[k]] = 1 }
              $3 == "s" && $4 ~ ENVIRON["re"] && !($1 in okf) {
                  print "#   " $2 " includes <" $4 "> (" $1 ")" }')
    if [ -z "$bad" ]; then
        echo "ok $i - $lib headers only in: $allowed"
    else
        echo "not ok $i - $lib headers only in: $allowed"
        printf '%s\n' "$bad"
    fi
done
exit 0
