/* The hub's TLS identity: a self-signed certificate made on first start. */
#ifndef OUTPOST_HUB_TLS_H
#define OUTPOST_HUB_TLS_H

#include <stddef.h>

/* Loads <dir>/hub.crt and <dir>/hub-tls.key, or creates them (ECDSA P-256, 10 years, names:
 * localhost, 127.0.0.1, ::1, the hostname, and extra_names). *cert_pem and *key_pem are
 * caller-freed; fingerprint gets "sha256:<hex>" of the certificate's DER. */
int tls_identity(const char *dir, const char *const *extra_names, char **cert_pem, char **key_pem,
                 char fingerprint[80], int *created, char *msg, size_t msglen);

#endif
