/* memds_tree.c: element tree helpers (memds_tree.h). */
#include "syncml/memds_tree.h"

#include <apr_strings.h>
#include <string.h>

memds_node_t *memds_node_new(const memds_tag_t *tag, apr_pool_t *p)
{
    memds_node_t *n = apr_pcalloc(p, sizeof(*n));

    n->tag = tag;
    return n;
}

memds_node_t *memds_node_add(memds_node_t *parent, memds_node_t *child)
{
    child->parent = parent;
    child->next = NULL;
    if (parent->last) {
        parent->last->next = child;
    }
    else {
        parent->first = child;
    }
    parent->last = child;
    return child;
}

memds_node_t *memds_node_add_text(memds_node_t *parent, const memds_tag_t *tag,
                                  const char *text, apr_size_t len,
                                  apr_pool_t *p)
{
    memds_node_t *n = memds_node_new(tag, p);

    n->text = apr_pstrmemdup(p, text, len);
    n->len = len;
    return memds_node_add(parent, n);
}

memds_node_t *memds_node_add_ref(memds_node_t *parent, const memds_tag_t *tag,
                                 const char *text, apr_size_t len,
                                 apr_pool_t *p)
{
    memds_node_t *n = memds_node_new(tag, p);

    n->text = text ? text : "";
    n->len = text ? len : 0;
    return memds_node_add(parent, n);
}

memds_node_t *memds_node_add_str(memds_node_t *parent, const memds_tag_t *tag,
                                 const char *s, apr_pool_t *p)
{
    if (s == NULL) {
        return NULL;
    }
    return memds_node_add_text(parent, tag, s, strlen(s), p);
}

memds_node_t *memds_node_child(const memds_node_t *n, const char *name)
{
    memds_node_t *c;

    for (c = n ? n->first : NULL; c; c = c->next) {
        if (strcmp(c->tag->name, name) == 0) {
            return c;
        }
    }
    return NULL;
}

const char *memds_node_str(const memds_node_t *n, apr_pool_t *p)
{
    const char *s, *e;

    if (n == NULL || n->text == NULL) {
        return "";
    }
    s = n->text;
    e = n->text + n->len;
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) {
        ++s;
    }
    while (
        e > s
        && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n')) {
        --e;
    }
    return apr_pstrmemdup(p, s, (apr_size_t)(e - s));
}
