/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca: the state shared by the parts of a running mayfly-ca.
 *
 * One struct ca_ctx per process, built by ca_main.c. Its modules are
 * thread-safe on their own (store, keys, issuer); the change signal below
 * wakes long-polling sync requests whenever the registry or the bundle
 * changes.
 */
#ifndef CA_H
#define CA_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ca/ca_config.h"
#include "ca/ca_issue.h"
#include "ca/ca_keys.h"
#include "ca/ca_signer.h"
#include "ca/ca_store.h"

struct ca_api;
struct ca_admin;
struct ca_bundle_ep;
struct ca_fed;

struct ca_ctx {
    struct ca_config cfg;         /* immutable after start */
    struct ca_store *store;       /* thread-safe */
    struct ca_keys *keys;         /* thread-safe */
    struct ca_issuer *issuer;     /* thread-safe */
    struct ca_sign_pool *signers; /* thread-safe; NULL: sign on the caller's thread */
    struct ca_api *api;           /* owned by ca_main */
    struct ca_admin *admin;       /* owned by ca_main */
    struct ca_bundle_ep *bep;     /* owned by ca_main; NULL when off */
    struct ca_fed *fed;           /* owned by ca_main; thread-safe */
    pthread_mutex_t ch_mu;        /* protects gen and stopping */
    pthread_cond_t ch_cond;       /* broadcast when gen moves or stopping is set */
    uint64_t gen;                 /* protected by ch_mu: change generation */
    bool stopping;                /* protected by ch_mu */
};

/* Tells waiting sync requests that something changed. */
void ca_ctx_changed(struct ca_ctx *c);

#endif /* CA_H */
