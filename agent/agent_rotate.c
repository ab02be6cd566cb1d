/* SPDX-License-Identifier: Apache-2.0 */
/*
 * agent_rotate: renewal schedule and retry backoff. See agent_rotate.h.
 */
#include "agent/agent_rotate.h"

#include "api/core/mf_mem.h"
#include "api/core/mf_time.h"

/* see agent_rotate.h */
void agent_rotate_cfg_default(struct agent_rotate_cfg *cfg)
{
    cfg->lo_pct = AGENT_ROTATE_LO_DEFAULT;
    cfg->hi_pct = AGENT_ROTATE_HI_DEFAULT;
    cfg->backoff_base_ms = AGENT_BACKOFF_BASE_MS_DEFAULT;
    cfg->backoff_cap_ms = AGENT_BACKOFF_CAP_MS_DEFAULT;
}

/* see agent_rotate.h */
mf_res agent_rotate_cfg_check(const struct agent_rotate_cfg *cfg)
{
    MF_ENSURE_REF(cfg);
    MF_ENSURE_MSG(cfg->lo_pct >= 1 && cfg->hi_pct <= 99 && cfg->lo_pct <= cfg->hi_pct,
                  MF_ERR_USAGE_ARG, "renewal window must satisfy 1 <= lo <= hi <= 99 (%%)");
    MF_ENSURE_MSG(cfg->backoff_base_ms > 0 && cfg->backoff_cap_ms >= cfg->backoff_base_ms,
                  MF_ERR_USAGE_ARG, "backoff needs 0 < base <= cap");
    return MF_RES_OK;
}

/* see agent_rotate.h */
mf_res agent_rotate_draw(const struct agent_rotate_cfg *cfg, int64_t not_before, int64_t not_after,
                         int64_t *renew_at_ms)
{
    MF_ENSURE_REF(renew_at_ms);
    *renew_at_ms = 0;
    MF_TRY(agent_rotate_cfg_check(cfg));
    MF_ENSURE_MSG(not_after > not_before && not_before >= 0, MF_ERR_USAGE_ARG,
                  "empty validity window");
    /* The CA backdates NotBefore by 10 s (clock-skew cushion), so for a
     * fresh SVID the window counts from now: with NotBefore a 6 s SVID had
     * its 45-55 % instant already behind it on arrival and was re-signed
     * in a loop (tests/integration/fault_agent_kill9.sh saw some 60
     * signings a second). An SVID that is not current (tests) keeps
     * NotBefore. */
    int64_t now = mf_now();
    if (now > not_before && now < not_after) {
        not_before = now;
    }
    /* in ms so that short test TTLs (seconds) still get a real spread; the
     * window is at most 10 years, so none of this can overflow int64 */
    int64_t life_ms = (not_after - not_before) * 1000;
    uint64_t lo = (uint64_t)(life_ms / 100 * cfg->lo_pct + life_ms % 100 * cfg->lo_pct / 100);
    uint64_t hi = (uint64_t)(life_ms / 100 * cfg->hi_pct + life_ms % 100 * cfg->hi_pct / 100);
    uint64_t off = 0;
    MF_TRY(mf_random_range(lo, hi, &off));
    *renew_at_ms = not_before * 1000 + (int64_t)off;
    return MF_RES_OK;
}

/* see agent_rotate.h */
bool agent_rotate_due(int64_t renew_at_ms)
{
    return mf_now_ms() >= renew_at_ms;
}

/* see agent_rotate.h */
bool agent_svid_servable(int64_t not_after)
{
    return mf_now_ms() < not_after * 1000;
}

/* see agent_rotate.h */
mf_res agent_backoff_delay(const struct agent_rotate_cfg *cfg, unsigned attempt, int64_t *delay_ms)
{
    MF_ENSURE_REF(delay_ms);
    *delay_ms = 0;
    MF_TRY(agent_rotate_cfg_check(cfg));
    int64_t d = cfg->backoff_base_ms;
    for (unsigned i = 0; i < attempt && d < cfg->backoff_cap_ms; i++) {
        d *= 2;
    }
    if (d > cfg->backoff_cap_ms) {
        d = cfg->backoff_cap_ms;
    }
    uint64_t j = 0;
    MF_TRY(mf_random_range((uint64_t)(d / 2), (uint64_t)d, &j));
    *delay_ms = (int64_t)j;
    return MF_RES_OK;
}
