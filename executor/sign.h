/* SPDX-License-Identifier: ISC */
/* sign — Ed25519 job signatures: the key files taskexec keygen writes, and
 * signing and verifying a job's canonical form (job_canonical). */
#ifndef TASKEXEC_SIGN_H
#define TASKEXEC_SIGN_H

#include <jansson.h>
#include <stddef.h>

#define SIGN_PUBLIC_KEY_BYTES 32
#define SIGN_SECRET_KEY_BYTES 64
/* A key file holds one line of base64 (RFC 4648, padded); larger is refused. */
#define SIGN_KEY_FILE_MAX 4096
/* The base64 text of a key, NUL included. */
#define SIGN_PUBLIC_KEY_TEXT 45
#define SIGN_SECRET_KEY_TEXT 89

/* Once, before anything below: 0 or -EIO. */
int sign_init(void) __attribute__((warn_unused_result));

/* Read a key file: 0, -errno from reading it (-EFBIG past SIGN_KEY_FILE_MAX),
 * or -EBADMSG when it is not one line of base64 of the key's size.
 * ret_key is untouched on failure. */
int sign_load_public_key(const char *path, unsigned char ret_key[SIGN_PUBLIC_KEY_BYTES])
	__attribute__((warn_unused_result));
int sign_load_secret_key(const char *path, unsigned char ret_key[SIGN_SECRET_KEY_BYTES])
	__attribute__((warn_unused_result));

/* Does signature (base64) over doc's canonical form verify under one of the
 * public key files?  A file that cannot be read or is no key verifies
 * nothing (the daemon's preflight names such files).  0, or -EBADMSG with a
 * "signature invalid: …" line in *ret_err. */
int sign_verify(const json_t *doc, const char *signature, char *const *key_files, char **ret_err)
	__attribute__((warn_unused_result));

/* Set doc's "signature" to the signature of its canonical form under the
 * secret key.  0, or -EINVAL with a message in *ret_err (doc unchanged). */
int sign_job(json_t *doc, const unsigned char key[SIGN_SECRET_KEY_BYTES], char **ret_err)
	__attribute__((warn_unused_result));

/* A new key pair, each as the base64 line its key file holds. */
void sign_keygen(char ret_public[SIGN_PUBLIC_KEY_TEXT], char ret_secret[SIGN_SECRET_KEY_TEXT]);

/* Overwrite secret material in a way the compiler does not elide. */
void sign_wipe(void *p, size_t n);

#endif
