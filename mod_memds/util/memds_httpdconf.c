/* memds_httpdconf.c: a directive's values from httpd's configuration files
 * (see memds_httpdconf.h). */
#include "util/memds_httpdconf.h"

#include <apr_env.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_hash.h>
#include <apr_strings.h>
#include <ctype.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct hc_t {
    apr_pool_t *p;
    const char *name;
    const char *root;       /* ServerRoot so far */
    apr_hash_t *defines;    /* Define NAME [VALUE] */
    apr_array_header_t *out;
    const char *err;
} hc_t;

const char *memds_httpdconf_word(const char **pline, apr_pool_t *p)
{
    const char *s = *pline;
    char q, *w, *o;

    while (*s && isspace((unsigned char)*s)) {
        ++s;
    }
    if (*s == '\0') {
        *pline = s;
        return NULL;
    }
    if (*s == '"' || *s == '\'') {
        q = *s++;
        w = o = apr_palloc(p, strlen(s) + 1);
        while (*s && *s != q) {
            if (*s == '\\' && s[1] == q) {
                ++s;
            }
            *o++ = *s++;
        }
        *o = '\0';
        if (*s == q) {
            ++s;
        }
    }
    else {
        const char *b = s;
        while (*s && !isspace((unsigned char)*s)) {
            ++s;
        }
        w = apr_pstrndup(p, b, (apr_size_t)(s - b));
    }
    while (*s && isspace((unsigned char)*s)) {
        ++s;
    }
    *pline = s;
    return w;
}

/* ${NAME}: a Define, else the environment, else left as it is (as httpd
 * does, with a warning there). */
static const char *expand(hc_t *h, const char *s)
{
    const char *v, *e;
    char *env = NULL, *name;
    apr_size_t n;
    char *out = "";

    while ((v = strstr(s, "${")) != NULL && (e = strchr(v + 2, '}')) != NULL) {
        n = (apr_size_t)(e - v - 2);
        name = apr_pstrndup(h->p, v + 2, n);
        out = apr_pstrcat(h->p, out, apr_pstrndup(h->p, s, (apr_size_t)(v - s)),
                          NULL);
        if (apr_hash_get(h->defines, name, APR_HASH_KEY_STRING)) {
            out = apr_pstrcat(h->p, out,
                              (const char *)apr_hash_get(h->defines, name,
                                                         APR_HASH_KEY_STRING),
                              NULL);
        }
        else if (apr_env_get(&env, name, h->p) == APR_SUCCESS) {
            out = apr_pstrcat(h->p, out, env, NULL);
        }
        else {
            out = apr_pstrcat(h->p, out,
                              apr_pstrndup(h->p, v, (apr_size_t)(e - v + 1)),
                              NULL);
        }
        s = e + 1;
    }
    return apr_pstrcat(h->p, out, s, NULL);
}

static const char *rooted(hc_t *h, const char *path)
{
    return path[0] == '/' ? path : apr_pstrcat(h->p, h->root, "/", path, NULL);
}

static apr_status_t read_file(hc_t *h, const char *path, int depth);

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Include / IncludeOptional: a file, a directory (its entries in order),
 * or a wildcard pattern. */
static apr_status_t include(hc_t *h, const char *pattern, int optional,
                            int depth)
{
    apr_finfo_t fi;
    apr_dir_t *dir;
    glob_t g;
    apr_array_header_t *names;
    const char *path = rooted(h, pattern);
    apr_status_t rv;
    size_t k;
    int i;

    if (strpbrk(path, "*?[") != NULL) {
        memset(&g, 0, sizeof(g));
        if (glob(path, 0, NULL, &g) != 0) {
            globfree(&g);
            return APR_SUCCESS; /* (no match: nothing to include) */
        }
        names = apr_array_make(h->p, (int)g.gl_pathc, sizeof(const char *));
        for (k = 0; k < g.gl_pathc; ++k) {
            APR_ARRAY_PUSH(names, const char *) = apr_pstrdup(h->p,
                                                              g.gl_pathv[k]);
        }
        globfree(&g);
        for (i = 0; i < names->nelts; ++i) {
            rv = include(h, APR_ARRAY_IDX(names, i, const char *), 1, depth);
            if (rv != APR_SUCCESS) {
                return rv;
            }
        }
        return APR_SUCCESS;
    }
    if (apr_stat(&fi, path, APR_FINFO_TYPE, h->p) != APR_SUCCESS) {
        if (optional) {
            return APR_SUCCESS;
        }
        h->err = apr_psprintf(h->p, "cannot read %s (Include)", path);
        return APR_ENOENT;
    }
    if (fi.filetype != APR_DIR) {
        return read_file(h, path, depth + 1);
    }
    if (apr_dir_open(&dir, path, h->p) != APR_SUCCESS) {
        h->err = apr_psprintf(h->p, "cannot read the directory %s", path);
        return APR_EACCES;
    }
    names = apr_array_make(h->p, 8, sizeof(const char *));
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, dir)
           == APR_SUCCESS) {
        if (fi.name[0] != '.') {
            APR_ARRAY_PUSH(names, const char *) = apr_pstrcat(
                h->p, path, "/", fi.name, NULL);
        }
    }
    apr_dir_close(dir);
    qsort(names->elts, (size_t)names->nelts, sizeof(const char *), cmp_str);
    for (i = 0; i < names->nelts; ++i) {
        rv = include(h, APR_ARRAY_IDX(names, i, const char *), 1, depth);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    return APR_SUCCESS;
}

/* One logical line (continuations joined). */
static apr_status_t directive(hc_t *h, const char *line, int depth)
{
    const char *w = memds_httpdconf_word(&line, h->p), *a;

    if (w == NULL || w[0] == '#' || w[0] == '<') {
        return APR_SUCCESS;
    }
    line = expand(h, line);
    if (strcasecmp(w, h->name) == 0) {
        if ((a = memds_httpdconf_word(&line, h->p)) != NULL) {
            APR_ARRAY_PUSH(h->out, const char *) = a;
        }
    }
    else if (strcasecmp(w, "ServerRoot") == 0) {
        if ((a = memds_httpdconf_word(&line, h->p)) != NULL) {
            h->root = a;
        }
    }
    else if (strcasecmp(w, "Define") == 0) {
        if ((a = memds_httpdconf_word(&line, h->p)) != NULL) {
            const char *v = memds_httpdconf_word(&line, h->p);
            apr_hash_set(h->defines, a, APR_HASH_KEY_STRING, v ? v : "");
        }
    }
    else if (strcasecmp(w, "Include") == 0
             || strcasecmp(w, "IncludeOptional") == 0) {
        while ((a = memds_httpdconf_word(&line, h->p)) != NULL) {
            apr_status_t rv = include(h, a, strcasecmp(w, "Include") != 0,
                                      depth);
            if (rv != APR_SUCCESS) {
                return rv;
            }
        }
    }
    return APR_SUCCESS;
}

static apr_status_t read_file(hc_t *h, const char *path, int depth)
{
    apr_file_t *f;
    char buf[8192];
    char *acc = NULL;
    apr_size_t n;
    apr_status_t rv;

    if (depth > MEMDS_HTTPDCONF_MAX_DEPTH) {
        h->err = apr_psprintf(h->p,
                              "Include nested more than %d deep at %s (a "
                              "loop?)",
                              MEMDS_HTTPDCONF_MAX_DEPTH, path);
        return APR_EINVAL;
    }
    if (apr_file_open(&f, path, APR_FOPEN_READ, APR_OS_DEFAULT, h->p)
        != APR_SUCCESS) {
        h->err = apr_psprintf(h->p, "cannot read %s", path);
        return APR_ENOENT;
    }
    while (apr_file_gets(buf, sizeof(buf), f) == APR_SUCCESS) {
        n = strcspn(buf, "\r\n");
        buf[n] = '\0';
        if (n > 0 && buf[n - 1] == '\\') {
            buf[n - 1] = '\0';
            acc = apr_pstrcat(h->p, acc ? acc : "", buf, NULL);
            continue;
        }
        rv = directive(h, acc ? apr_pstrcat(h->p, acc, buf, NULL) : buf,
                       depth);
        acc = NULL;
        if (rv != APR_SUCCESS) {
            apr_file_close(f);
            return rv;
        }
    }
    apr_file_close(f);
    return acc ? directive(h, acc, depth) : APR_SUCCESS;
}

apr_status_t memds_httpdconf_find(apr_array_header_t **pvalues,
                                  const char *path, const char *server_root,
                                  const char *name, const char **perr,
                                  apr_pool_t *p)
{
    hc_t h;
    apr_status_t rv;
    const char *slash;

    memset(&h, 0, sizeof(h));
    h.p = p;
    h.name = name;
    h.defines = apr_hash_make(p);
    h.out = apr_array_make(p, 2, sizeof(const char *));
    slash = strrchr(path, '/');
    h.root = server_root ? server_root
             : slash     ? apr_pstrndup(p, path, (apr_size_t)(slash - path))
                         : ".";
    if (*h.root == '\0') {
        h.root = "/";
    }
    rv = read_file(&h, path, 0);
    if (rv != APR_SUCCESS) {
        *perr = h.err;
        return rv;
    }
    *pvalues = h.out;
    return APR_SUCCESS;
}
