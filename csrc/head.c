/*
 * An output head and its loss in one call (crnn.h: crnn_head_loss): the
 * checks of every argument a C caller could get wrong, then the
 * instruction-set build's kernel (head.inc) with the call's thread count.
 */
#include "internal.h"

/* An array of `count` elements may be NULL only when empty. */
static int present(const void *p, int64_t count) { return p != NULL || count == 0; }

static int head_ok(const crnn_head *h)
{
    if (!h || (h->dtype != CRNN_F32 && h->dtype != CRNN_F64) ||
        (h->loss != CRNN_LOSS_CROSS_ENTROPY && h->loss != CRNN_LOSS_MSE))
        return 0;
    const int64_t N = h->rows, K = h->in_features, C = h->out_features;
    const int64_t limit = INT64_MAX / 64;
    if (N < 0 || K < 0 || C < 0 || (N && (K > limit / N || C > limit / N)) || (C && K > limit / C))
        return 0;
    if (!present(h->x, N * K) || !present(h->weight, C * K) || !present(h->dweight, C * K))
        return 0;
    if (h->loss == CRNN_LOSS_CROSS_ENTROPY) {
        if (!present(h->classes, N) || (N > 0 && C == 0))
            return 0;
        for (int64_t r = 0; r < N; r++)
            if (h->classes[r] < 0 || h->classes[r] >= C)
                return 0;
    } else if (!present(h->targets, N * C)) {
        return 0;
    }
    return 1;
}

int crnn_head_loss(const crnn_head *head, double *loss)
{
    if (!loss || !head_ok(head))
        return CRNN_ERR_INVALID;
    *loss = 0.0;
    return crnn_kernel_table_of(crnn_get_isa())
        ->head_loss[head->dtype](head, crnn_threads_for_call(), loss);
}
