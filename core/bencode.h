/**
 * @file bencode.h  Bencoding (BEP 3): a strict decoder for untrusted bytes and an encoder that
 * appends to a growing buffer. Shared by the tracker (its answers) and the swarm (tracker replies).
 *
 * The grammar, exactly: an integer is `i` [-] digits `e` with no leading zero and no `-0`, within
 * int64; a byte string is a decimal length (no leading zero) `:` and that many bytes; a list is
 * `l` values `e`; a dictionary is `d` (byte-string key, value)* `e` with keys in strictly
 * increasing byte order (so sorted and unique). One value fills the whole input.
 *
 * The decoder builds a flat array of nodes in document order (as jsmn does): a container is
 * followed by its children, and each node knows where its subtree ends, so walking needs no
 * recursion and no per-node allocation. Strings are not copied: they point into the input, which
 * must outlive the document. Every count and length is checked against a named limit before
 * anything is allocated.
 */
#ifndef PREON_CORE_BENCODE_H
#define PREON_CORE_BENCODE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Deepest nesting of lists and dictionaries accepted (the decoder recurses this deep). */
#ifndef BENCODE_MAX_DEPTH
#define BENCODE_MAX_DEPTH 32
#endif
/** Most values (nodes) in one document. */
#ifndef BENCODE_MAX_NODES
#define BENCODE_MAX_NODES (1u << 20)
#endif
/** Longest byte string. */
#ifndef BENCODE_MAX_STRING
#define BENCODE_MAX_STRING (16u * 1024 * 1024)
#endif

/* ---- encoder ---------------------------------------------------------------------------------- */

/** A growing byte buffer. Invariant: data holds len bytes and has room for cap (data may be NULL
 * while cap is 0). Reset keeps the memory, so a buffer reused per request stops allocating. */
typedef struct bencode_buf {
    char *data;
    size_t len, cap;
} bencode_buf_t;

void bencode_buf_init(bencode_buf_t *b);
void bencode_buf_release(bencode_buf_t *b);
/** Empties the buffer but keeps its memory. */
void bencode_buf_reset(bencode_buf_t *b);
/** Makes room for n more bytes and returns where they go; the caller writes them and the length
 * already counts them. Aborts on OOM (xalloc). */
char *bencode_put_space(bencode_buf_t *b, size_t n);
/** The caller takes the bytes (free() them); the buffer is left empty. NULL if empty. */
char *bencode_buf_detach(bencode_buf_t *b, size_t *len);

void bencode_put_int(bencode_buf_t *b, int64_t v);
void bencode_put_str(bencode_buf_t *b, const void *s, size_t len);
void bencode_put_cstr(bencode_buf_t *b, const char *s);
/** Opens a list or a dictionary; bencode_put_end closes the innermost. The encoder does not
 * check key order: the caller writes dictionary keys sorted (tests decode what it wrote). */
void bencode_put_list(bencode_buf_t *b);
void bencode_put_dict(bencode_buf_t *b);
void bencode_put_end(bencode_buf_t *b);

/* ---- decoder ---------------------------------------------------------------------------------- */

typedef enum bencode_type {
    BENCODE_INT = 1,
    BENCODE_STR,
    BENCODE_LIST,
    BENCODE_DICT,
} bencode_type_t;

typedef struct bencode_node {
    bencode_type_t type;
    /** Lists: items; dictionaries: key/value pairs (children are key, value, key, value...). */
    uint32_t count;
    /** Index of the first node after this node's subtree (the next sibling, if any). */
    uint32_t end;
    int64_t i;          /**< BENCODE_INT */
    const char *s;      /**< BENCODE_STR: points into the decoded input, not NUL-terminated */
    size_t len;         /**< BENCODE_STR */
} bencode_node_t;

typedef struct bencode_doc {
    bencode_node_t *nodes; /**< nodes[0] is the root */
    size_t n, cap;
} bencode_doc_t;

/** Overrides for the limits above; a zero field keeps the default. */
typedef struct bencode_limits {
    unsigned max_depth;
    size_t max_nodes;
    size_t max_string;
} bencode_limits_t;

void bencode_doc_init(bencode_doc_t *d);
void bencode_doc_release(bencode_doc_t *d);

/**
 * Decodes buf[0..len) into d (which must be bencode_doc_init'ed; its previous contents are
 * replaced). lim may be NULL. Returns 0, -EINVAL for bytes that break the grammar, or -EMSGSIZE for
 * input over a limit; on error `why` says what and where (byte offset), and d is empty.
 */
int bencode_decode(bencode_doc_t *d, const char *buf, size_t len, const bencode_limits_t *lim,
                   char *why, size_t whylen);

/** The root node, or NULL for an empty document. */
const bencode_node_t *bencode_root(const bencode_doc_t *d);
/** The i-th item of a list (or i-th key/value node of a dictionary), or NULL. O(i). */
const bencode_node_t *bencode_child(const bencode_doc_t *d, const bencode_node_t *parent, size_t i);
/** The value stored under key in a dictionary, or NULL (absent, or parent not a dictionary). */
const bencode_node_t *bencode_dict_get(const bencode_doc_t *d, const bencode_node_t *dict,
                                       const void *key, size_t keylen);
/** As bencode_dict_get with a NUL-terminated key. */
const bencode_node_t *bencode_dict_cget(const bencode_doc_t *d, const bencode_node_t *dict,
                                        const char *key);
/** True if node is a byte string equal to the NUL-terminated s. */
bool bencode_str_eq(const bencode_node_t *node, const char *s);

#endif
