/* Intrusive doubly linked list: an object's state is the list it sits on
 * (pgbouncer's habit), so moving between lists is O(1) and counting a state
 * is reading a counter. */
#ifndef DBL_LIST_H
#define DBL_LIST_H

#include <stddef.h>

typedef struct list_node {
    struct list_node *prev, *next;
} list_node_t;

typedef struct list {
    list_node_t head;
    size_t count;
} list_t;

#define list_entry(node, type, member) ((type *)((char *)(node)-offsetof(type, member)))

static inline void list_init(list_t *l)
{
    l->head.prev = l->head.next = &l->head;
    l->count = 0;
}

static inline int list_empty(const list_t *l)
{
    return l->count == 0;
}

static inline void list_append(list_t *l, list_node_t *n)
{
    n->prev = l->head.prev;
    n->next = &l->head;
    l->head.prev->next = n;
    l->head.prev = n;
    l->count++;
}

static inline void list_remove(list_t *l, list_node_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
    l->count--;
}

static inline list_node_t *list_first(const list_t *l)
{
    return l->count ? l->head.next : NULL;
}

/* Safe against removal of the current node. */
#define list_for_each(l, it, tmp)                                                                  \
    for ((it) = (l)->head.next, (tmp) = (it)->next; (it) != &(l)->head;                           \
         (it) = (tmp), (tmp) = (it)->next)

#endif
