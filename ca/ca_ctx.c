/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_ctx: the change signal of struct ca_ctx (see ca.h). Kept out of
 * ca_main.c so that unit tests can link every other module.
 */
#include "ca/ca.h"

void ca_ctx_changed(struct ca_ctx *c)
{
    pthread_mutex_lock(&c->ch_mu);
    c->gen++;
    pthread_cond_broadcast(&c->ch_cond);
    pthread_mutex_unlock(&c->ch_mu);
}
