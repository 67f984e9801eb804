/**
 * @file memds_send.h
 * Sending mail: the Outbox datastore provider (kind "imap", datastore
 * "Outbox"; the hierarchical datastore hands its Outbox folder to it) and
 * the background retries. The glue registers the provider and calls the
 * background job; nothing else reaches into send/.
 */
#ifndef MEMDS_SEND_H
#define MEMDS_SEND_H

#include "ds/memds_ds.h"

/** Register the Outbox provider. */
void memds_send_register(memds_ds_registry_t *reg);

/**
 * The background part of sending: retry the due Outbox messages of every
 * account sent through cfg->location (at most limit), with cfg's settings
 * and the master user (a pass-through SMTP login cannot be retried without
 * the device: those rows wait for its next sync). *psent: how many went
 * out. Every step is committed at once (no surrounding transaction); the
 * job's own store connection comes from pool, the ledger's from
 * cfg->ledger_pool.
 */
apr_status_t memds_send_background(int *psent, struct memds_pgpool_t *pool,
                                   const memds_mail_cfg_t *cfg, int limit,
                                   apr_pool_t *p);

#endif /* MEMDS_SEND_H */
