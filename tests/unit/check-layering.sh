#!/bin/sh
# The core library must not include httpd headers, libpq must stay in store/,
# libcurl in backends/ (DESIGN.md "Layers"). Fails listing the offenders.
top=${top_srcdir:-$(dirname "$0")/../..}
rc=0
core=$(find "$top/mod_memds" "$top/backends" -name '*.[ch]' \
        ! -path "$top/mod_memds/mod_memds.c" ! -path "$top/mod_memds/memds_*.c" \
        ! -path "$top/mod_memds/memds_glue.h" 2>/dev/null)
bad=$(grep -lE '#include *[<"](httpd|http_[a-z_]*|ap_[a-z_]*|util_[a-z_]*)\.h' $core)
[ -n "$bad" ] && { echo "# httpd headers outside the glue: $bad"; rc=1; }
bad=$(grep -lE '#include *[<"]libpq' $core | grep -v "/store/")
[ -n "$bad" ] && { echo "# libpq outside store/: $bad"; rc=1; }
bad=$(grep -lE '#include *[<"]curl/' $core | grep -v "$top/backends/")
[ -n "$bad" ] && { echo "# libcurl outside backends/: $bad"; rc=1; }
echo "1..1"
if [ $rc = 0 ]; then echo "ok 1 - layering"; else echo "not ok 1 - layering"; fi
exit 0
