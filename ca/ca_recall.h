/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ca_recall: what the registry last said about each agent and about each
 * agent's entries, so that renewals go on while a shared database is
 * unreachable.
 *
 * Only the answers that signing needs are kept: an agent's record (is it
 * attested, is it banned) and the list of entries parented to it. Each is
 * stamped with the monotonic time it was read. An answer is given back
 * only while it is younger than the grace period, and only if nothing
 * invalidated it since: a write through this server drops what it touched
 * (an entry write drops every entry list, a ban or an eviction drops that
 * agent), and a change notice from another server drops everything. So a
 * recalled answer is never older than the grace period, and never older
 * than the last change this server knows of.
 *
 * Thread-safe. Internal to mayfly-ca.
 */
#ifndef CA_RECALL_H
#define CA_RECALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/core/mf_err.h"
#include "ca/ca_store.h"

struct ca_recall;

/* A recall whose answers live grace_ms after they were read (> 0). */
MF_WUR mf_res ca_recall_new(int64_t grace_ms, struct ca_recall **out);
void ca_recall_free(struct ca_recall *r); /* NULL is a no-op */

/* Remembers agent a as read at now_ms. */
MF_WUR mf_res ca_recall_put_agent(struct ca_recall *r, const struct ca_agent *a, int64_t now_ms);
/* The agent record read at most grace ago and not dropped since: true,
 * *out and *age_ms set; false when there is none. */
bool ca_recall_agent(struct ca_recall *r, const char *id, int64_t now_ms, struct ca_agent *out,
                     int64_t *age_ms);

/* Remembers the entries parented to parent (copied) as read at now_ms. */
MF_WUR mf_res ca_recall_put_entries(struct ca_recall *r, const char *parent,
                                    const struct ca_entry *v, size_t n, int64_t now_ms);
/* A copy of the entry list of parent read at most grace ago and not
 * dropped since (freed by the caller with ca_entries_free); false when
 * there is none. */
MF_WUR mf_res ca_recall_entries(struct ca_recall *r, const char *parent, int64_t now_ms,
                                struct ca_entry **out, size_t *n, int64_t *age_ms, bool *found);

void ca_recall_forget_agent(struct ca_recall *r, const char *id);
void ca_recall_forget_entries(struct ca_recall *r); /* every entry list */
void ca_recall_forget_all(struct ca_recall *r);

/* Number of answers held (agents plus entry lists). */
size_t ca_recall_count(struct ca_recall *r);

#endif /* CA_RECALL_H */
