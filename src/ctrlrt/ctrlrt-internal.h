/* ctrlrt-internal.h: what the runtime's files share (not for controllers). */
#ifndef KF_CTRL_INTERNAL_H
#define KF_CTRL_INTERNAL_H

#include "kfleet/ctrlrt.h"

struct kf_informer *kf_informer_new(struct kf_ctrl_manager *m, const struct kf_kind *k);
void kf_informer_free(struct kf_informer *inf);
const struct kf_kind *kf_informer_kind(struct kf_informer *inf);
void kf_informer_add_handler(struct kf_informer *inf, struct kf_ctrl *c, kf_ctrl_map_fn map);
int kf_informer_start(struct kf_informer *inf);
/* Waits for the first list; returns its result. */
int kf_informer_wait_synced(struct kf_informer *inf);
void kf_informer_stop(struct kf_informer *inf);

struct kf_store *kf_ctrl_manager_store(struct kf_ctrl_manager *m);
bool kf_ctrl_manager_owns(struct kf_ctrl_manager *m, const struct kf_kind *k, const json_t *obj);

/* Called with the controller's data when the manager is freed. */
void kf_ctrl_set_fini(struct kf_ctrl *c, void (*fini)(void *data));
/* Zeroed memory that lives as long as the manager. */
void *kf_ctrl_manager_alloc(struct kf_ctrl_manager *m, size_t size);

#endif
