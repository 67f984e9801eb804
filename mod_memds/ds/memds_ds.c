/* memds_ds.c: the datastore registry and factory, and the state the
 * datastores of one request share. Neutral: it knows no provider but the
 * built-in "items"; the mailbox and Outbox providers are registered by the
 * glue at start-up (memds_ds_mail_register, memds_send_register). */
#include "ds/memds_ds.h"

#include <apr_hash.h>
#include <apr_strings.h>
#include <string.h>

struct memds_ds_registry_t {
    apr_array_header_t *provs; /* const memds_ds_provider_t * */
};

memds_ds_registry_t *memds_ds_registry_make(apr_pool_t *p)
{
    memds_ds_registry_t *reg = apr_pcalloc(p, sizeof(*reg));

    reg->provs = apr_array_make(p, 4, sizeof(const memds_ds_provider_t *));
    memds_ds_register(reg, &memds_ds_items_provider);
    return reg;
}

void memds_ds_register(memds_ds_registry_t *reg,
                       const memds_ds_provider_t *prov)
{
    APR_ARRAY_PUSH(reg->provs, const memds_ds_provider_t *) = prov;
}

/* The provider for (kind, store): one whose test claims the store, else
 * the kind's catch-all; NULL when there is none. */
static const memds_ds_provider_t *find(const memds_ds_registry_t *reg,
                                       const char *kind, const char *store)
{
    static const memds_ds_provider_t *const builtin[] = {
        &memds_ds_items_provider
    };
    const memds_ds_provider_t *const *v = builtin, *any = NULL;
    int n = 1, i;

    if (reg) {
        v = (const memds_ds_provider_t *const *)reg->provs->elts;
        n = reg->provs->nelts;
    }
    for (i = 0; i < n; ++i) {
        if (strcmp(v[i]->kind, kind) != 0) {
            continue;
        }
        if (v[i]->serves == NULL) {
            if (any == NULL) {
                any = v[i];
            }
        }
        else if (store && v[i]->serves(store)) {
            return v[i];
        }
    }
    return any;
}

apr_status_t memds_ds_open(memds_ds_t **pds, const memds_ds_env_t *env,
                           memds_store_t *st, const char *account,
                           const char *store, apr_int64_t device_id,
                           apr_pool_t *p)
{
    const memds_ds_provider_t *prov = find(env->registry, env->kind, store);
    memds_ds_t *ds;
    apr_status_t rv;

    if (prov == NULL) {
        return APR_ENOTIMPL;
    }
    ds = apr_pcalloc(p, sizeof(*ds));
    ds->st = st;
    ds->account = apr_pstrdup(p, account);
    ds->login = memds_account_login(ds->account,
                                    env->mail ? env->mail->realm : NULL);
    if (ds->login == NULL) {
        return APR_ENOTIMPL; /* (the engine never opens another realm's) */
    }
    ds->store = apr_pstrdup(p, store);
    ds->device_id = device_id;
    rv = prov->open(ds, env, p);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    *pds = ds;
    return APR_SUCCESS;
}

void memds_ds_change_push(apr_array_header_t *changes, const char *guid,
                          int deleted, apr_int64_t seq, apr_int64_t changed_by)
{
    memds_ds_change_t *c = apr_palloc(changes->pool, sizeof(*c));

    c->guid = guid;
    c->deleted = deleted;
    c->seq = seq;
    c->changed_by = changed_by;
    c->content_seq = 0;
    APR_ARRAY_PUSH(changes, memds_ds_change_t *) = c;
}

/* ------------------------------------------------------------ shared state */

struct memds_ds_shared_t {
    apr_pool_t *p;
    apr_hash_t *slots; /* made on first use */
};

memds_ds_shared_t *memds_ds_shared_make(apr_pool_t *p)
{
    memds_ds_shared_t *sh = apr_pcalloc(p, sizeof(*sh));

    sh->p = p;
    return sh;
}

void *memds_ds_shared_get(memds_ds_shared_t *sh, const char *key)
{
    return sh->slots ? apr_hash_get(sh->slots, key, APR_HASH_KEY_STRING) : NULL;
}

void memds_ds_shared_set(memds_ds_shared_t *sh, const char *key, void *v)
{
    if (sh->slots == NULL) {
        sh->slots = apr_hash_make(sh->p);
    }
    apr_hash_set(sh->slots, key, APR_HASH_KEY_STRING, v);
}

apr_pool_t *memds_ds_shared_pool(memds_ds_shared_t *sh)
{
    return sh->p;
}

/* ------------------------------------------------------------ levels */

int memds_ds_level_is_whole(const memds_ds_level_t *l)
{
    return l == NULL || l->whole_max < 0;
}

const char *memds_ds_value_escape(const char *v, apr_pool_t *p)
{
    const unsigned char *c = (const unsigned char *)v;
    char *esc = apr_palloc(p, strlen(v) * 3 + 1), *o = esc;

    for (; *c; ++c) {
        if (*c <= ' ' || *c >= 127 || *c == '%' || *c == ';' || *c == '=') {
            o += apr_snprintf(o, 4, "%%%02X", *c);
        }
        else {
            *o++ = (char)*c;
        }
    }
    *o = 0;
    return esc;
}

static int hexval(char c);

char *memds_ds_value_unescape(char *v)
{
    char *o = v, *i = v;

    while (*i) {
        if (*i == '%' && hexval(i[1]) >= 0 && hexval(i[2]) >= 0) {
            *o++ = (char)(hexval(i[1]) * 16 + hexval(i[2]));
            i += 3;
        }
        else {
            *o++ = *i++;
        }
    }
    *o = 0;
    return v;
}

const char *memds_ds_level_format(const memds_ds_level_t *l, apr_pool_t *p)
{
    const char *s;

    if (memds_ds_level_is_whole(l)) {
        return "whole";
    }
    s = apr_psprintf(p, "w=%" APR_INT64_T_FMT ";t=%" APR_INT64_T_FMT ";a=%d",
                     l->whole_max, l->text_max, l->attach ? 1 : 0);
    if (l->attach_name) {
        s = apr_pstrcat(p, s, ";n=", memds_ds_value_escape(l->attach_name, p),
                        NULL);
    }
    return s;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
}

apr_status_t memds_ds_level_parse(memds_ds_level_t *l, const char *s,
                                  apr_pool_t *p)
{
    char *copy, *tok, *last;
    int seen = 0;

    memset(l, 0, sizeof(*l));
    if (s == NULL) {
        return APR_EINVAL;
    }
    if (strcmp(s, "whole") == 0) {
        l->whole_max = -1;
        l->text_max = -1;
        l->attach = 1;
        return APR_SUCCESS;
    }
    copy = apr_pstrdup(p, s);
    for (tok = apr_strtok(copy, ";", &last); tok;
         tok = apr_strtok(NULL, ";", &last)) {
        char *end;
        if (tok[0] == 0 || tok[1] != '=') {
            return APR_EINVAL;
        }
        if (tok[0] == 'n') {
            l->attach_name = memds_ds_value_unescape(tok + 2);
            continue;
        }
        {
            apr_int64_t v = apr_strtoi64(tok + 2, &end, 10);
            if (end == tok + 2 || *end) {
                return APR_EINVAL;
            }
            switch (tok[0]) {
            case 'w':
                l->whole_max = v;
                seen |= 1;
                break;
            case 't':
                l->text_max = v;
                seen |= 2;
                break;
            case 'a':
                l->attach = v != 0;
                seen |= 4;
                break;
            default: return APR_EINVAL;
            }
        }
    }
    return seen == 7 ? APR_SUCCESS : APR_EINVAL;
}

const char *memds_account_key(const char *login, const char *realm,
                              apr_pool_t *p)
{
    return realm ? apr_pstrcat(p, realm, ":", login, NULL) : login;
}

const char *memds_account_login(const char *key, const char *realm)
{
    size_t n;

    if (realm == NULL) {
        return key;
    }
    n = strlen(realm);
    return strncmp(key, realm, n) == 0 && key[n] == ':' ? key + n + 1 : NULL;
}
