/* SPDX-License-Identifier: ISC */
/* sign — Ed25519 job signatures: the key files taskexec keygen writes, and
 * signing and verifying a job's canonical form (job_canonical). */
#include "sign.h"
#include "job.h"
#include "util.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(SIGN_PUBLIC_KEY_BYTES == crypto_sign_PUBLICKEYBYTES, "Ed25519 public key size");
_Static_assert(SIGN_SECRET_KEY_BYTES == crypto_sign_SECRETKEYBYTES, "Ed25519 secret key size");
_Static_assert(SIGN_PUBLIC_KEY_TEXT ==
	       sodium_base64_ENCODED_LEN(SIGN_PUBLIC_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL), "public key text");
_Static_assert(SIGN_SECRET_KEY_TEXT ==
	       sodium_base64_ENCODED_LEN(SIGN_SECRET_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL), "secret key text");

int sign_init(void)
{
	return sodium_init() < 0 ? -EIO : 0;
}

void sign_wipe(void *p, size_t n)
{
	sodium_memzero(p, n);
}

/* n characters of base64 that decode to exactly len bytes. */
static int decode(const char *text, size_t n, unsigned char *out, size_t len)
{
	size_t got = 0;

	if (sodium_base642bin(out, len, text, n, NULL, &got, NULL,
			      sodium_base64_VARIANT_ORIGINAL) < 0 || got != len)
		return -EBADMSG;
	return 0;
}

static int load_key(const char *path, unsigned char *ret_key, size_t len)
{
	unsigned char key[SIGN_SECRET_KEY_BYTES];
	char *text = NULL;
	int r;

	r = read_file(path, SIGN_KEY_FILE_MAX, &text, NULL);
	if (r < 0)
		return r;
	/* The first line: what an editor appends after it does not count. */
	r = decode(text, strcspn(text, "\r\n"), key, len);
	sodium_memzero(text, strlen(text));
	free(text);
	if (r == 0)
		memcpy(ret_key, key, len);
	sodium_memzero(key, sizeof(key));
	return r;
}

int sign_load_public_key(const char *path, unsigned char ret_key[SIGN_PUBLIC_KEY_BYTES])
{
	return load_key(path, ret_key, SIGN_PUBLIC_KEY_BYTES);
}

int sign_load_secret_key(const char *path, unsigned char ret_key[SIGN_SECRET_KEY_BYTES])
{
	return load_key(path, ret_key, SIGN_SECRET_KEY_BYTES);
}

int sign_verify(const json_t *doc, const char *signature, char *const *key_files, char **ret_err)
{
	unsigned char sig[crypto_sign_BYTES];
	char *canon, *err = NULL;
	bool ok = false;

	if (!signature) {
		*ret_err = xstrdup("signature invalid: the job carries no signature");
		return -EBADMSG;
	}
	if (decode(signature, strlen(signature), sig, sizeof(sig)) < 0) {
		*ret_err = xstrdup("signature invalid: not a base64 Ed25519 signature");
		return -EBADMSG;
	}
	canon = job_canonical(doc, &err);
	if (!canon) {
		*ret_err = err;
		return -EBADMSG;
	}
	for (char *const *k = key_files; k && *k && !ok; k++) {
		unsigned char pk[SIGN_PUBLIC_KEY_BYTES];

		if (sign_load_public_key(*k, pk) == 0)
			ok = crypto_sign_verify_detached(sig, (const unsigned char *)canon, strlen(canon), pk) == 0;
	}
	free(canon);
	if (!ok) {
		*ret_err = xstrdup("signature invalid: no key in TASKEXEC_VERIFY_KEYS verifies it");
		return -EBADMSG;
	}
	return 0;
}

int sign_job(json_t *doc, const unsigned char key[SIGN_SECRET_KEY_BYTES], char **ret_err)
{
	unsigned char sig[crypto_sign_BYTES];
	char text[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	char *canon = job_canonical(doc, ret_err);

	if (!canon)
		return -EINVAL;
	crypto_sign_detached(sig, NULL, (const unsigned char *)canon, strlen(canon), key);
	free(canon);
	sodium_bin2base64(text, sizeof(text), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
	json_object_set_new(doc, "signature", json_string(text));
	return 0;
}

void sign_keygen(char ret_public[SIGN_PUBLIC_KEY_TEXT], char ret_secret[SIGN_SECRET_KEY_TEXT])
{
	unsigned char pk[SIGN_PUBLIC_KEY_BYTES], sk[SIGN_SECRET_KEY_BYTES];

	crypto_sign_keypair(pk, sk);
	sodium_bin2base64(ret_public, SIGN_PUBLIC_KEY_TEXT, pk, sizeof(pk), sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(ret_secret, SIGN_SECRET_KEY_TEXT, sk, sizeof(sk), sodium_base64_VARIANT_ORIGINAL);
	sodium_memzero(sk, sizeof(sk));
}
