/**
 * @file bundle.h  A small task result carried inline in the volunteer's /v1/done request, so a tiny
 * result costs one request instead of a result-manifest GET plus one GET per block.
 *
 * Wire (docs/protocol.md): two query parameters, `man` (the result's canonical manifest) and `data`
 * (the contents of its files, concatenated in manifest order), each in base64url without padding.
 * Only results whose every file fits in one block and whose contents total at most BUNDLE_MAX_DATA
 * bytes travel this way; bigger ones are fetched block by block as before.
 *
 * Pure functions (no I/O), so the checks are unit-tested: bundle_parse refuses anything whose bytes
 * do not hash to the block hashes of the manifest that came with them, before the caller writes a byte.
 */
#ifndef PREON_POOL_BUNDLE_H
#define PREON_POOL_BUNDLE_H
#include <stdbool.h>
#include <stddef.h>

#include "core/manifest.h"

/** Bytes of file contents a bundle may carry. */
#ifndef BUNDLE_MAX_DATA
#define BUNDLE_MAX_DATA 1024
#endif
/** Bytes of the encoded manifest a bundle may carry (the whole URL must stay under the fetcher's cap). */
#ifndef BUNDLE_MAX_MANIFEST
#define BUNDLE_MAX_MANIFEST 1536
#endif

/** Characters of the base64url (unpadded) form of n bytes. */
size_t bundle_b64_len(size_t n);
/** Writes the base64url (unpadded) form of in[0..n) and a NUL to out (bundle_b64_len(n) + 1 bytes). */
void bundle_b64_encode(const void *in, size_t n, char *out);
/** Decodes base64url (unpadded) into out. 0, -EINVAL (a bad character or length), -EMSGSIZE (over cap). */
int bundle_b64_decode(const char *in, size_t n, void *out, size_t cap, size_t *outlen);

/** True if m's result can travel inline: every file within one block, contents within BUNDLE_MAX_DATA. */
bool bundle_fits(const manifest_t *m);

/**
 * The query part "&man=...&data=..." (xmalloc'd, in *out) for the encoded manifest man[0..manlen) and
 * the concatenated contents data[0..len). 0, or -EMSGSIZE if either is over its cap.
 */
int bundle_query(const char *man, size_t manlen, const char *data, size_t len, char **out);

/**
 * Reads a bundle from a raw query string. On 0, *m holds the decoded manifest (manifest_init'ed by the
 * caller, released by the caller in every case) and *data (xmalloc'd, *len bytes) the contents, every
 * file checked against its block hash. -ENOENT: the query carries no bundle (no `man`). Otherwise
 * -EMSGSIZE, -EINVAL or -EBADMSG (contents that do not match the manifest) with why filled.
 */
int bundle_parse(const char *query, size_t qlen, manifest_t *m, char **data, size_t *len, char *why,
                 size_t whylen);

#endif
