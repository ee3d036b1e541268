/*
 * crnn: C kernels for recurrent neural networks (the whole public interface).
 *
 * Plain C11, no Python headers. One generic driver runs every cell; a call
 * describes the layer, its weights, the sequence and (for the backward) the
 * gradients in four small structs:
 *
 *     crnn_layer      what runs: cell, element type, activations, sizes
 *     crnn_weights    the parameters, PyTorch's layout
 *     crnn_sequence   inputs, initial and final states, outputs, and what the
 *                     forward saves for the backward
 *     crnn_gradients  the backward's inputs (dout, dstate_n) and outputs
 *
 * All arrays are dense, C-contiguous, in the caller's native byte order and
 * of the element type layer.dtype; sizes are 64-bit. Time-major: x is
 * (T, B, I), out is (T, B, H) (the Jordan network: (T, B, O)).
 *
 * Cells (G = gates * H rows in w_ih and w_hh; biases (G,)):
 *
 *   CRNN_CELL_RNN     gates 1, states (h)
 *       h_t = f(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),  f = activation
 *       saved: nothing (the backward reads out)
 *   CRNN_CELL_LSTM    gates 4 [i f g o], states (h, c)
 *       i, f, o = sigmoid(.), g = tanh(.) of x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh
 *       c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)
 *       saved[0]: gates (T, B, 4H), the activations i, f, g, o
 *       saved[1]: cells (T, B, H), c_t
 *   CRNN_CELL_GRU     gates 3 [r z n], states (h)
 *       r, z = sigmoid(x_t W_i{r,z}^T + b_i{r,z} + h_{t-1} W_h{r,z}^T + b_h{r,z})
 *       n = tanh(x_t W_in^T + b_in + r (h_{t-1} W_hn^T + b_hn))
 *       h_t = (1 - z) n + z h_{t-1}
 *       saved[0]: gates (T, B, 3H), the activations r, z, n
 *       saved[1]: hn (T, B, H), h_{t-1} W_hn^T + b_hn
 *   CRNN_CELL_JORDAN  gates 1, states (y): the previous *output* is fed back
 *       h_t = f(x_t W_ih^T + b_ih + y_{t-1} W_hh^T + b_hh),  f = activation
 *       y_t = g(h_t W_ho^T + b_ho),                          g = output_activation
 *       w_hh is (H, O) (PyTorch-style name weight_hy), w_ho (O, H), b_ho (O,);
 *       out and the state are O wide
 *       saved[0]: hidden (T, B, H), h_t
 *   CRNN_CELL_GRU_RESET_BEFORE  gates 3 [r z n], states (h): the GRU with r
 *       applied before n's recurrent product (ONNX's linear_before_reset=0)
 *       r, z as CRNN_CELL_GRU's
 *       n = tanh(x_t W_in^T + b_in + (r h_{t-1}) W_hn^T + b_hn)
 *       h_t = (1 - z) n + z h_{t-1}
 *       saved[0]: gates (T, B, 3H), the activations r, z, n
 *       saved[1]: rh (T, B, H), r h_{t-1}
 *
 * Variable lengths: with lengths (B values in [0, T]), row b is valid for
 * t < lengths[b]. On its other steps out, saved and the cache rows are 0 and
 * the states are held, so state_n[b] is the state after the row's last valid
 * step (state0[b], or 0, for a length of 0); the backward gives those steps
 * no gradient, and never reads x or dout there.
 *
 * Every function is thread-safe and reentrant: callers may run any number of
 * calls at once from different threads. Results are bitwise independent of
 * the thread count (fixed reduction orders).
 */
#ifndef CRNN_H
#define CRNN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by the kernels. */
enum crnn_status {
    CRNN_OK = 0,
    CRNN_ERR_NOMEM = 1,   /* a workspace allocation failed */
    CRNN_ERR_INVALID = 2, /* a size, code or required pointer is out of range */
    CRNN_ERR_STALE = 3,   /* prepared weights packed for another instruction set */
};

/* Element types.
 *
 * CRNN_F32_BF16 (crnn_forward, crnn_backward; not for cells with an output
 * layer or a second recurrent product, nor prepared weights): float32 arrays, as CRNN_F32, but
 * every operand of the layer's matrix products -- the weights, the inputs x, the recurrent input
 * h_{t-1}, and in the backward the gate gradients -- rounded to bfloat16 (round to nearest, ties to
 * even, on the float32 bits), the products summed in float32; biases, states, the cells'
 * element-wise work and every array in and out stay float32. The gate gradients are rounded where
 * they are made, so the bias gradients (their column sums) sum the rounded values too, and the
 * weight gradients take the rounded x and h_{t-1}. The amx_bf16 build multiplies on AMX tiles,
 * the avx512_bf16 build on vdpbf16ps, the others on float32 multiply-adds of the rounded values:
 * the same products (a product of two bfloat16 values is exact in float32), summed in another
 * order. */
enum crnn_dtype {
    CRNN_F32 = 0,      /* float */
    CRNN_F64 = 1,      /* double */
    CRNN_F32_BF16 = 2, /* float arrays, bfloat16 products */
};

/* Cells (crnn_cells.def). */
enum crnn_cell {
#define CRNN_CELL(ID, name) CRNN_CELL_##ID,
#include "crnn_cells.def"
#undef CRNN_CELL
    CRNN_CELL_COUNT
};

/* Activations (crnn_activations.def): CRNN_TANH, CRNN_RELU, ... */
enum crnn_activation {
#define CRNN_ACTIVATION(ID, name) CRNN_##ID,
#include "crnn_activations.def"
#undef CRNN_ACTIVATION
    CRNN_ACTIVATION_COUNT
};

/* Instruction sets a kernel build exists for (crnn_isas.def):
 * CRNN_ISA_GENERIC, CRNN_ISA_AVX2, ...; CRNN_ISA_AUTO picks the best the
 * running CPU supports. */
enum crnn_isa {
    CRNN_ISA_AUTO = -1,
#define CRNN_ISA(ID, name) CRNN_ISA_##ID,
#include "crnn_isas.def"
#undef CRNN_ISA
    CRNN_ISA_COUNT
};

enum {
    CRNN_MAX_STATES = 2, /* states a cell carries: h, or (h, c) */
    CRNN_MAX_SAVED = 2,  /* arrays a forward saves for its backward */
};

/* What runs. */
typedef struct crnn_layer {
    int cell;              /* enum crnn_cell */
    int dtype;             /* enum crnn_dtype, of every array of the call */
    int activation;        /* rnn, jordan: f (enum crnn_activation) */
    int output_activation; /* jordan: g (enum crnn_activation) */
    int64_t input_size;    /* I */
    int64_t hidden_size;   /* H */
    int64_t output_size;   /* jordan: O; ignored by the other cells */
} crnn_layer;

/* The parameters, PyTorch's layout (see the cells above for the shapes). */
typedef struct crnn_weights {
    const void *w_ih; /* (G, I) */
    const void *w_hh; /* (G, H); jordan: (H, O) */
    const void *b_ih; /* (G,) or NULL */
    const void *b_hh; /* (G,) or NULL */
    const void *w_ho; /* jordan: (O, H) */
    const void *b_ho; /* jordan: (O,) or NULL */
} crnn_weights;

/* One sequence batch. The forward reads x, lengths and state0 and writes
 * out, state_n and saved; the backward reads them all.
 *
 * Token inputs: with ids (T, B) given, ids in [0, I) at every valid step, x
 * is not read: the inputs are the one-hot vectors of the ids, and their
 * product with w_ih is a gather of its columns -- the same values as the
 * product with those vectors (a NaN or Inf in another column of w_ih does
 * not reach the row, as 0 * Inf would). The backward then gives dw_ih as a
 * scatter of the gate gradients and no dx (grads.dx may be NULL). */
typedef struct crnn_sequence {
    int64_t steps;                       /* T */
    int64_t batch;                       /* B */
    const int64_t *lengths;              /* (B,) in [0, T], or NULL: all T */
    const void *x;                       /* (T, B, I) */
    const void *state0[CRNN_MAX_STATES]; /* (B, width) each, or NULL: zeros */
    void *out;                           /* (T, B, H); jordan (T, B, O) */
    void *state_n[CRNN_MAX_STATES];      /* (B, width) each */
    void *saved[CRNN_MAX_SAVED];         /* crnn_cell_info.saved_gates */
    const int64_t *ids;                  /* (T, B) token ids, or NULL: x is read */
} crnn_sequence;

/* The backward's gradients. dout and dstate_n may be NULL (zero); every
 * other array but the biases' is written; db_ih, db_hh and db_ho are written
 * when not NULL (db_ih and db_hh are equal unless the cell's info says
 * separate_bias_grads). */
typedef struct crnn_gradients {
    const void *dout;                      /* shaped like out, or NULL */
    const void *dstate_n[CRNN_MAX_STATES]; /* shaped like state_n, or NULL */
    void *dx;                              /* (T, B, I); not with ids */
    void *dstate0[CRNN_MAX_STATES];        /* shaped like state0 (also when NULL) */
    void *dw_ih, *dw_hh, *db_ih, *db_hh;   /* shaped like the weights */
    void *dw_ho, *db_ho;                   /* jordan */
} crnn_gradients;

/* What a cell is, for callers that allocate its arrays. */
typedef struct crnn_cell_info {
    const char *name;                /* "rnn", "lstm", ... */
    int gates;                       /* G = gates * H */
    int states;                      /* 1 or 2 */
    int state_is_output;             /* states and out are O wide (jordan) */
    int saved;                       /* arrays in crnn_sequence.saved */
    int saved_gates[CRNN_MAX_SAVED]; /* saved[k] is (T, B, saved_gates[k] * H) */
    int separate_bias_grads;         /* db_ih and db_hh differ (gru) */
} crnn_cell_info;

/* Fills *info for cell; CRNN_ERR_INVALID for an unknown cell. */
int crnn_cell_info_get(int cell, crnn_cell_info *info);

/* Runs the layer over the sequence. */
int crnn_forward(const crnn_layer *layer, const crnn_weights *weights, const crnn_sequence *seq);

/* Backpropagation through time for a forward of the same layer, weights
 * and sequence (seq as the forward left it). */
int crnn_backward(const crnn_layer *layer, const crnn_weights *weights, const crnn_sequence *seq,
                  const crnn_gradients *grads);

/*
 * Prepared weights, for many short calls with the same weights (streaming
 * inference, sampling: one step at a time). crnn_prepare copies the weights
 * and packs them once, for the instruction set in use, into a new object
 * (*prepared); the arrays are not referenced afterwards. crnn_prepared_update
 * packs new values of the same layer's weights (the same biases present)
 * into it, for the instruction set in use then. crnn_forward_prepared is
 * crnn_forward with those weights, bitwise the same results, for short
 * sequences and small batches: it runs on the calling thread (but one step
 * of one row whose weights outgrow a core's cache splits its hidden units
 * across threads), allocates no workspace for small batches, and seq->out
 * and seq->saved may be NULL (not written); state_n may be state0 itself
 * (states updated in place). It
 * returns CRNN_ERR_STALE when the instruction set changed since the weights
 * were packed (crnn_prepared_update packs them again). Concurrent
 * crnn_forward_prepared calls on one object are safe; an update is not
 * (it must not overlap any call on the object).
 */
typedef struct crnn_prepared crnn_prepared;

int crnn_prepare(const crnn_layer *layer, const crnn_weights *weights, crnn_prepared **prepared);
int crnn_prepared_update(crnn_prepared *prepared, const crnn_weights *weights);
void crnn_prepared_free(crnn_prepared *prepared);
int crnn_forward_prepared(const crnn_prepared *prepared, const crnn_sequence *seq);

/*
 * Gradient clipping over n arrays of element type dtype, as if concatenated.
 * crnn_total_norm: the p-norm (p > 0, or INFINITY for the max-norm),
 * accumulated in double in a fixed order (NaN for an unknown dtype).
 * crnn_scale: multiplies every element by factor (rounded to dtype).
 * crnn_clip_value: clamps to [-clip, clip]; NaN stays NaN.
 */
double crnn_total_norm(int dtype, int64_t n, const void *const *arrays, const int64_t *sizes,
                       double p);
int crnn_scale(int dtype, int64_t n, void *const *arrays, const int64_t *sizes, double factor);
int crnn_clip_value(int dtype, int64_t n, void *const *arrays, const int64_t *sizes, double clip);

/*
 * Embedding backward: the gradient of a lookup out[i] = weight[ids[i]]
 * (ids of any shape, flattened to n_ids; weight (num_embeddings, dim)).
 * Writes every element of dweight (num_embeddings, dim):
 *
 *     dweight[v] = sum of dout[i] (dout (n_ids, dim)) over i with ids[i] == v
 *
 * and zero for the row padding_idx (-1: none). Each row sums its ids' rows in
 * the order of the ids, whatever the thread count, so the result is bitwise
 * the same for any number of threads. CRNN_ERR_INVALID, with nothing
 * written, for an id outside [0, num_embeddings), a padding_idx outside
 * [-1, num_embeddings), a negative size or an unknown dtype.
 */
int crnn_embedding_backward(int dtype, const int64_t *ids, int64_t n_ids, int64_t dim,
                            const void *dout, int64_t num_embeddings, int64_t padding_idx,
                            void *dweight);

/*
 * A network's output head and its loss in one call, for training: the
 * logits z = x W^T + b of N rows (a crnn.nn.Linear), the mean loss
 * (*loss), and its gradients -- dW and db added to dweight and dbias, dx
 * written -- without the logits leaving C:
 *
 *   CRNN_LOSS_CROSS_ENTROPY  mean over rows of -log softmax(z_r)[classes[r]]
 *                            (classes[r] in [0, C))
 *   CRNN_LOSS_MSE            mean over elements of (z - targets)^2
 *                            (targets (N, C))
 *
 * dx and dbias may be NULL (not computed); the bias may be NULL (none).
 * The loss is summed in double, in an order that does not depend on the
 * thread count; every array has the element type dtype.
 */
enum crnn_loss {
    CRNN_LOSS_CROSS_ENTROPY = 0,
    CRNN_LOSS_MSE = 1,
};

typedef struct crnn_head {
    int dtype;              /* enum crnn_dtype */
    int loss;               /* enum crnn_loss */
    int64_t rows;           /* N */
    int64_t in_features;    /* K */
    int64_t out_features;   /* C */
    const void *x;          /* (N, K) */
    const void *weight;     /* (C, K) */
    const void *bias;       /* (C,) or NULL */
    const int64_t *classes; /* cross-entropy: (N,) */
    const void *targets;    /* squared error: (N, C) */
    void *dx;               /* (N, K), or NULL */
    void *dweight;          /* (C, K): += dW */
    void *dbias;            /* (C,): += db, or NULL */
} crnn_head;

int crnn_head_loss(const crnn_head *head, double *loss);

/*
 * One optimizer step over n parameter arrays, crnn.optim's formulas (those
 * of torch.optim), in one pass over every array: the gradients are first
 * clamped to [-clip_value, clip_value] (clip_value >= 0) and their total
 * norm_type-norm taken (max_norm >= 0; crnn_total_norm), then each element's
 * gradient is scaled by min(1, max_norm / (norm + 1e-6)) when that is below
 * 1 (or NaN) -- written back, as clipping is in place -- and the parameter
 * and the optimizer's buffers updated from it. The arithmetic is the
 * element type's, each hyper-parameter rounded to it, in the order of
 * crnn.optim's NumPy code (no fused multiply-adds), so the results are
 * bitwise those of that code. *total_norm gets the norm (NaN without
 * max_norm).
 *
 * buffers[k] holds, per parameter, the k-th state array of the optimizer
 * (NULL where it has none):
 *   SGD      momentum_buffer (momentum != 0; set from the gradient when
 *            first_step)
 *   Adagrad  sum
 *   RMSprop  square_avg, grad_avg (centered), momentum_buffer (momentum > 0)
 *   Adam     exp_avg, exp_avg_sq, max_exp_avg_sq (amsgrad)
 */
enum crnn_optimizer_kind {
    CRNN_OPT_SGD = 0,
    CRNN_OPT_ADAGRAD = 1,
    CRNN_OPT_RMSPROP = 2,
    CRNN_OPT_ADAM = 3,
};

enum { CRNN_MAX_BUFFERS = 3 };

typedef struct crnn_optimizer {
    int kind;     /* enum crnn_optimizer_kind */
    int dtype;    /* of every array */
    int64_t step; /* the step being taken: 1 for the first */
    double lr;    /* learning rate */
    double weight_decay;
    double eps;
    double momentum, dampening; /* SGD; RMSprop's momentum */
    int nesterov;               /* SGD */
    double beta1, beta2;        /* Adam */
    int amsgrad;                /* Adam */
    int decoupled;              /* Adam: weight decay applied to the parameter (AdamW) */
    double lr_decay;            /* Adagrad */
    double alpha;               /* RMSprop */
    int centered;               /* RMSprop */
    int first_step;             /* SGD: the momentum buffers start from the gradient */
    double clip_value;          /* >= 0: clamp the gradients first; < 0: no */
    double max_norm;            /* >= 0: clip the gradients' total norm; < 0: no */
    double norm_type;           /* p of that norm (INFINITY: max-norm) */
} crnn_optimizer;

typedef struct crnn_parameters {
    int64_t n;                              /* arrays */
    const int64_t *sizes;                   /* elements of each */
    void *const *params;                    /* updated in place */
    void *const *grads;                     /* read; written when clipped */
    void *const *buffers[CRNN_MAX_BUFFERS]; /* the optimizer's state (see above) */
} crnn_parameters;

int crnn_optimizer_step(const crnn_optimizer *opt, const crnn_parameters *params,
                        double *total_norm);

/*
 * Threads. crnn_set_num_threads(n > 0) fixes the count for every later call
 * from any thread; n <= 0 returns to OpenMP's per-call default
 * (omp_get_max_threads(), so OMP_NUM_THREADS and threadpoolctl apply).
 *
 * Fork: a process forked after crnn ran parallel regions (a multiprocessing
 * pool, a preforking server) keeps working. With GNU OpenMP, whose threads
 * do not survive a fork, a handler lets the forking thread's threads go
 * before the fork (the parent starts new ones at its next region); should
 * that fail, the child runs every call on one thread, and
 * crnn_get_num_threads() returns 1 there whatever was set.
 */
void crnn_set_num_threads(int n);
int crnn_get_num_threads(void);
int crnn_have_openmp(void);

/*
 * Instruction set. crnn_set_isa(CRNN_ISA_AUTO) picks the best the CPU
 * supports (the default, also settable by the CRNN_ISA environment variable
 * read on first use); a specific one is refused (CRNN_ERR_INVALID) when the
 * CPU or the build lacks it. crnn_isa_supported tells without changing it.
 */
int crnn_set_isa(int isa);
int crnn_get_isa(void);
int crnn_isa_supported(int isa);

/* Names: "auto", "generic", ...; "tanh", ...; NULL for an unknown code. */
const char *crnn_isa_name(int isa);
const char *crnn_activation_name(int activation);
const char *crnn_compiler(void);

#ifdef __cplusplus
}
#endif

#endif /* CRNN_H */
