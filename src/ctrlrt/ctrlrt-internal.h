/* ctrlrt-internal.h: what the runtime's files share (not for controllers). */
#ifndef KF_CTRL_INTERNAL_H
#define KF_CTRL_INTERNAL_H

#include "kfleet/ctrlrt.h"

struct kf_informer *kf_informer_new(struct kf_ctrl_manager *m, const struct kf_kind *k);
void kf_informer_free(struct kf_informer *inf);
void kf_informer_add_handler(struct kf_informer *inf, struct kf_ctrl *c, kf_ctrl_map_fn map);
int kf_informer_start(struct kf_informer *inf);
/* Waits for the first list; returns its result. */
int kf_informer_wait_synced(struct kf_informer *inf);
void kf_informer_stop(struct kf_informer *inf);

struct kf_store *kf_ctrl_manager_store(struct kf_ctrl_manager *m);
bool kf_ctrl_manager_owns(struct kf_ctrl_manager *m, const struct kf_kind *k, const json_t *obj);

#endif
