// oneDNN's recurrent cells (one layer, left to right) behind a small C API,
// so that the Python benchmarks can time them next to crnn through ctypes:
//   - cell 0, "rnn":  the vanilla RNN (tanh);
//   - cell 1, "lstm": the LSTM, gates i f g o (PyTorch's order too);
//   - cell 2, "gru":  the linear-before-reset GRU, gates u r o plus a fourth
//     bias for the recurrent half of o: PyTorch's GRU (gates r z n, b_hn
//     inside the reset product), with the first two gates swapped.
//
// Built by bench/native.py when oneDNN's headers are installed (Debian:
// `apt-get install libdnnl-dev`):
//
//   c++ -O2 -std=c++17 -shared -fPIC -fopenmp onednn_rnn.cpp -o libonednn_rnn.so -ldnnl
//
// Both oneDNN API generations are supported: v2 (operation descriptors,
// Debian 12 ships 2.6) and v3 (primitive descriptors built directly).
//
// What one run() computes, with the user's data in crnn's layout (time-major
// tnc activations, PyTorch-layout weights converted once at setup to oneDNN's
// plain ldigo, gates reordered):
//   - forward: a forward_inference primitive (fwd only) or a
//     forward_training primitive that also fills the workspace (fwd+bwd);
//   - backward (fwd+bwd only): the backward primitive, computing dx, dh0
//     (and dc0), dW_ih, dW_hh and the bias gradient from dout and dh_n (and
//     dc_n).
// The primitives choose their weight layouts (format `any`); the reorders
// from the user's plain weights into those layouts, and of the weight
// gradients back to plain, are part of run(), as crnn and PyTorch also pack
// their weights on every call. Weight gradients are zeroed in run() because
// oneDNN accumulates into them. oneDNN has one bias per gate, b_ih + b_hh
// (the GRU keeps b_hn apart as its fourth gate); its gradient is returned as
// the gradients of b_ih and of b_hh.
//
// Threads: Debian's oneDNN uses OpenMP. run() sets OpenMP's thread count of
// the calling thread to the handle's count (0: leave it) and restores it.
// With another threading runtime the count is left to oneDNN
// (onednn_rnn_threading() says which).

#if __has_include(<oneapi/dnnl/dnnl.hpp>)
#include <oneapi/dnnl/dnnl.hpp>
#else
#include <dnnl.hpp>
#endif

#if DNNL_CPU_RUNTIME == DNNL_RUNTIME_OMP
#include <omp.h>
#define HARNESS_OMP 1
#else
#define HARNESS_OMP 0
#endif

#include <cstdio>
#include <cstring>
#include <exception>
#include <initializer_list>
#include <new>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

thread_local std::string last_error;

enum Cell { CELL_RNN = 0, CELL_LSTM = 1, CELL_GRU = 2, N_CELLS };

const long CELL_GATES[N_CELLS] = {1, 4, 3};
// Position in oneDNN's gate order of each of PyTorch's gates (GRU: r z n
// become oneDNN's r, u, o = positions 1 0 2).
const long ONEDNN_GATE[N_CELLS][4] = {{0}, {0, 1, 2, 3}, {1, 0, 2}};

struct Rnn {
    int cell;
    long T, B, I, H;
    int threads;
    bool backward;
    engine eng;
    stream strm;

    // user (plain) memories; the c state ones only for the LSTM
    memory x, h0, c0, w_ih, w_hh, bias, out, h_n, c_n;
    memory dx, dh0, dc0, dw_ih, dw_hh, db, dout, dh_n, dc_n;

    // primitive-side memories (may alias the user ones)
    memory fwd_w_ih, fwd_w_hh, bwd_w_ih, bwd_w_hh, bwd_dw_ih, bwd_dw_hh;
    memory workspace;

    primitive fwd, bwd;
    std::unordered_map<int, memory> fwd_args, bwd_args;
    bool fwd_reorder_ih = false, fwd_reorder_hh = false;
    bool bwd_reorder_ih = false, bwd_reorder_hh = false;
    bool bwd_reorder_dih = false, bwd_reorder_dhh = false;

    long gates() const { return CELL_GATES[cell]; }
    bool lstm() const { return cell == CELL_LSTM; }
    // linear-before-reset: b_hn is a bias gate of its own
    bool lbr() const { return cell == CELL_GRU; }
};

// The plain descriptors of one problem (the c state has h's).
struct Descs {
    memory::desc x, out, iter, w_ih, w_hh, bias, w_ih_any, w_hh_any;
};

struct ThreadScope {
    int saved = 0;
    bool active = false;
    explicit ThreadScope(int n)
    {
        if (HARNESS_OMP && n > 0) {
#if HARNESS_OMP
            saved = omp_get_max_threads();
            omp_set_num_threads(n);
            active = true;
#endif
        }
    }
    ~ThreadScope()
    {
#if HARNESS_OMP
        if (active)
            omp_set_num_threads(saved);
#endif
    }
};

memory::desc md(const memory::dims &dims, tag t) { return memory::desc(dims, dt::f32, t); }

Descs descs(const Rnn &r)
{
    const memory::dim T = r.T, B = r.B, I = r.I, H = r.H, G = r.gates();
    const memory::dim bias_gates = G + (r.lbr() ? 1 : 0);
    return {md({T, B, I}, tag::tnc),       md({T, B, H}, tag::tnc),
            md({1, 1, B, H}, tag::ldnc),   md({1, 1, I, G, H}, tag::ldigo),
            md({1, 1, H, G, H}, tag::ldigo), md({1, 1, bias_gates, H}, tag::ldgo),
            md({1, 1, I, G, H}, tag::any), md({1, 1, H, G, H}, tag::any)};
}

void zero(const memory &m)
{
    std::memset(m.get_data_handle(), 0, m.get_desc().get_size());
}

// Creates each listed user memory, zeroed.
void allocate(Rnn &r, std::initializer_list<std::pair<memory *, memory::desc>> list)
{
    for (const auto &p : list) {
        *p.first = memory(p.second, r.eng);
        zero(*p.first);
    }
}

// The primitive's memory for a weight: the user's own memory when the
// primitive accepts its layout, else a new one (then a reorder is needed).
memory pick(const memory::desc &want, const memory &user, const engine &eng, bool &reorder)
{
    reorder = !(want == user.get_desc());
    return reorder ? memory(want, eng) : user;
}

// A primitive descriptor of P from its operation's arguments: v2 builds an
// operation descriptor first, v3 takes them directly.
template <class P, class... A> typename P::primitive_desc make_pd(const engine &eng, const A &...a)
{
#if DNNL_VERSION_MAJOR >= 3
    return typename P::primitive_desc(eng, a...);
#else
    return typename P::primitive_desc(typename P::desc(a...), eng);
#endif
}

// The same for a backward P, with the forward primitive descriptor as hint.
template <class P, class Hint, class... A>
typename P::primitive_desc make_bwd_pd(const engine &eng, const Hint &hint, const A &...a)
{
#if DNNL_VERSION_MAJOR >= 3
    return typename P::primitive_desc(eng, a..., hint);
#else
    return typename P::primitive_desc(typename P::desc(a...), eng, hint);
#endif
}

void attach_forward(Rnn &r, const rnn_primitive_desc_base &pd)
{
    r.fwd_w_ih = pick(pd.weights_layer_desc(), r.w_ih, r.eng, r.fwd_reorder_ih);
    r.fwd_w_hh = pick(pd.weights_iter_desc(), r.w_hh, r.eng, r.fwd_reorder_hh);
    r.fwd = primitive(pd);
    r.fwd_args = {{DNNL_ARG_SRC_LAYER, r.x},          {DNNL_ARG_SRC_ITER, r.h0},
                  {DNNL_ARG_WEIGHTS_LAYER, r.fwd_w_ih}, {DNNL_ARG_WEIGHTS_ITER, r.fwd_w_hh},
                  {DNNL_ARG_BIAS, r.bias},             {DNNL_ARG_DST_LAYER, r.out},
                  {DNNL_ARG_DST_ITER, r.h_n}};
    if (r.lstm()) {
        r.fwd_args[DNNL_ARG_SRC_ITER_C] = r.c0;
        r.fwd_args[DNNL_ARG_DST_ITER_C] = r.c_n;
    }
    if (r.backward) {
        r.workspace = memory(pd.workspace_desc(), r.eng);
        r.fwd_args[DNNL_ARG_WORKSPACE] = r.workspace;
    }
}

void attach_backward(Rnn &r, const rnn_primitive_desc_base &pd)
{
    r.bwd_w_ih = pick(pd.weights_layer_desc(), r.w_ih, r.eng, r.bwd_reorder_ih);
    r.bwd_w_hh = pick(pd.weights_iter_desc(), r.w_hh, r.eng, r.bwd_reorder_hh);
    r.bwd_dw_ih = pick(pd.diff_weights_layer_desc(), r.dw_ih, r.eng, r.bwd_reorder_dih);
    r.bwd_dw_hh = pick(pd.diff_weights_iter_desc(), r.dw_hh, r.eng, r.bwd_reorder_dhh);
    r.bwd = primitive(pd);
    // the forward's inputs, outputs and workspace, with the backward's weights
    r.bwd_args = r.fwd_args;
    r.bwd_args[DNNL_ARG_WEIGHTS_LAYER] = r.bwd_w_ih;
    r.bwd_args[DNNL_ARG_WEIGHTS_ITER] = r.bwd_w_hh;
    r.bwd_args.insert({{DNNL_ARG_DIFF_SRC_LAYER, r.dx},
                       {DNNL_ARG_DIFF_SRC_ITER, r.dh0},
                       {DNNL_ARG_DIFF_WEIGHTS_LAYER, r.bwd_dw_ih},
                       {DNNL_ARG_DIFF_WEIGHTS_ITER, r.bwd_dw_hh},
                       {DNNL_ARG_DIFF_BIAS, r.db},
                       {DNNL_ARG_DIFF_DST_LAYER, r.dout},
                       {DNNL_ARG_DIFF_DST_ITER, r.dh_n}});
    if (r.lstm()) {
        r.bwd_args[DNNL_ARG_DIFF_SRC_ITER_C] = r.dc0;
        r.bwd_args[DNNL_ARG_DIFF_DST_ITER_C] = r.dc_n;
    }
}

// The primitives of one cell. Fwd / Bwd: its oneDNN classes; pre: the
// arguments between the propagation kind and the direction (the vanilla
// RNN's activation); state: the descriptors of one recurrent state (h, and c
// for the LSTM). The backward takes the forward's descriptors twice: once for
// the tensors, once for their gradients.
template <class Fwd, class Bwd, class Pre, class State>
void build_cell(Rnn &r, const Descs &d, const Pre &pre, const State &state)
{
    const auto dir = std::make_tuple(rnn_direction::unidirectional_left2right);
    const auto io = std::tuple_cat(std::make_tuple(d.x), state,
                                   std::make_tuple(d.w_ih_any, d.w_hh_any, d.bias, d.out), state);
    const prop_kind pk = r.backward ? prop_kind::forward_training : prop_kind::forward_inference;
    const auto fpd = std::apply([&](const auto &...a) { return make_pd<Fwd>(r.eng, a...); },
                                std::tuple_cat(std::make_tuple(pk), pre, dir, io));
    attach_forward(r, fpd);
    if (!r.backward)
        return;
    const auto bpd = std::apply(
        [&](const auto &...a) { return make_bwd_pd<Bwd>(r.eng, fpd, a...); },
        std::tuple_cat(std::make_tuple(prop_kind::backward), pre, dir, io, io));
    attach_backward(r, bpd);
}

void build(Rnn &r)
{
    const Descs d = descs(r);
    allocate(r, {{&r.x, d.x}, {&r.h0, d.iter}, {&r.w_ih, d.w_ih}, {&r.w_hh, d.w_hh},
                 {&r.bias, d.bias}, {&r.out, d.out}, {&r.h_n, d.iter}});
    if (r.backward)
        allocate(r, {{&r.dx, d.x}, {&r.dh0, d.iter}, {&r.dw_ih, d.w_ih}, {&r.dw_hh, d.w_hh},
                     {&r.db, d.bias}, {&r.dout, d.out}, {&r.dh_n, d.iter}});
    if (r.lstm())
        allocate(r, {{&r.c0, d.iter}, {&r.c_n, d.iter}});
    if (r.lstm() && r.backward)
        allocate(r, {{&r.dc0, d.iter}, {&r.dc_n, d.iter}});

    const std::tuple<> none;
    switch (r.cell) {
    case CELL_RNN:
        build_cell<vanilla_rnn_forward, vanilla_rnn_backward>(
            r, d, std::make_tuple(algorithm::eltwise_tanh), std::make_tuple(d.iter));
        break;
    case CELL_LSTM:
        build_cell<lstm_forward, lstm_backward>(r, d, none, std::make_tuple(d.iter, d.iter));
        break;
    default:
        build_cell<lbr_gru_forward, lbr_gru_backward>(r, d, none, std::make_tuple(d.iter));
    }
}

void run(Rnn &r)
{
    if (r.fwd_reorder_ih)
        reorder(r.w_ih, r.fwd_w_ih).execute(r.strm, r.w_ih, r.fwd_w_ih);
    if (r.fwd_reorder_hh)
        reorder(r.w_hh, r.fwd_w_hh).execute(r.strm, r.w_hh, r.fwd_w_hh);
    r.fwd.execute(r.strm, r.fwd_args);
    if (r.backward) {
        if (r.bwd_reorder_ih)
            reorder(r.w_ih, r.bwd_w_ih).execute(r.strm, r.w_ih, r.bwd_w_ih);
        if (r.bwd_reorder_hh)
            reorder(r.w_hh, r.bwd_w_hh).execute(r.strm, r.w_hh, r.bwd_w_hh);
        zero(r.bwd_dw_ih);
        zero(r.bwd_dw_hh);
        zero(r.db);
        r.bwd.execute(r.strm, r.bwd_args);
        if (r.bwd_reorder_dih)
            reorder(r.bwd_dw_ih, r.dw_ih).execute(r.strm, r.bwd_dw_ih, r.dw_ih);
        if (r.bwd_reorder_dhh)
            reorder(r.bwd_dw_hh, r.dw_hh).execute(r.strm, r.bwd_dw_hh, r.dw_hh);
    }
    r.strm.wait();
}

float *ptr(const memory &m) { return static_cast<float *>(m.get_data_handle()); }

// Where row `row` (gate row / H, unit row % H) of a PyTorch-layout
// (G·H, K) weight sits in oneDNN's plain ldigo (K, G, H), column k.
long weight_index(const Rnn &r, long row, long k)
{
    const long gate = ONEDNN_GATE[r.cell][row / r.H];
    return (k * r.gates() + gate) * r.H + row % r.H;
}

// Where element `row` of b_ih (hh = false) or b_hh (hh = true) adds into
// oneDNN's bias (ldgo): the gate's summed bias, except the GRU's b_hn,
// which is the fourth bias gate (linear before reset).
long bias_index(const Rnn &r, long row, bool hh)
{
    const long gate = row / r.H;
    if (hh && r.lbr() && gate == r.gates() - 1)
        return r.gates() * r.H + row % r.H;
    return ONEDNN_GATE[r.cell][gate] * r.H + row % r.H;
}

// oneDNN's bias from b_ih and b_hh; a NULL one counts as zeros.
void set_bias(const Rnn &r, const float *b_ih, const float *b_hh)
{
    zero(r.bias);
    for (long row = 0; row < r.gates() * r.H; row++) {
        if (b_ih)
            ptr(r.bias)[bias_index(r, row, false)] += b_ih[row];
        if (b_hh)
            ptr(r.bias)[bias_index(r, row, true)] += b_hh[row];
    }
}

template <typename F> int guarded(F f)
{
    try {
        f();
        return 0;
    } catch (const dnnl::error &e) {
        last_error = std::string("oneDNN error: ") + e.what();
    } catch (const std::exception &e) {
        last_error = e.what();
    } catch (...) {
        last_error = "unknown C++ exception";
    }
    return -1;
}

} // namespace

extern "C" {

// "major.minor.patch" of the oneDNN library actually loaded.
__attribute__((visibility("default"))) const char *onednn_rnn_version(void)
{
    static char buf[64];
    const dnnl_version_t *v = dnnl_version();
    std::snprintf(buf, sizeof buf, "%d.%d.%d", v->major, v->minor, v->patch);
    return buf;
}

// "omp" when run() controls the thread count, else "other".
__attribute__((visibility("default"))) const char *onednn_rnn_threading(void)
{
    return HARNESS_OMP ? "omp" : "other";
}

__attribute__((visibility("default"))) const char *onednn_rnn_last_error(void)
{
    return last_error.c_str();
}

// Creates the primitives and their memory for cell 0 (rnn), 1 (lstm) or 2
// (gru). threads <= 0: OpenMP's default. Returns NULL on error (see
// onednn_rnn_last_error).
__attribute__((visibility("default"))) void *onednn_rnn_create(int cell, long T, long B, long I,
                                                               long H, int threads,
                                                               int with_backward)
{
    Rnn *r = nullptr;
    int rc = guarded([&] {
        if (cell < 0 || cell >= N_CELLS)
            throw std::invalid_argument("unknown cell kind " + std::to_string(cell));
        ThreadScope ts(threads);
        r = new Rnn();
        r->cell = cell;
        r->T = T;
        r->B = B;
        r->I = I;
        r->H = H;
        r->threads = threads;
        r->backward = with_backward != 0;
        r->eng = engine(engine::kind::cpu, 0);
        r->strm = stream(r->eng);
        build(*r);
    });
    if (rc) {
        delete r;
        return nullptr;
    }
    return r;
}

// Copies inputs given in crnn's layout (G gates: 1, 4 or 3): x (T,B,I),
// h0 (B,H), c0 (B,H, LSTM only), w_ih (G·H,I), w_hh (G·H,H), b_ih and b_hh
// (G·H; when either is given the bias is rebuilt, a NULL one counting as
// zeros), and for a fwd+bwd handle dout (T,B,H), dh_n (B,H) and dc_n (B,H,
// LSTM only). Other pointers may be NULL: left as is; those a handle has no
// use for are ignored.
__attribute__((visibility("default"))) int
onednn_rnn_set_inputs(void *h, const float *x, const float *h0, const float *c0,
                      const float *w_ih, const float *w_hh, const float *b_ih, const float *b_hh,
                      const float *dout, const float *dh_n, const float *dc_n)
{
    return guarded([&] {
        Rnn &r = *static_cast<Rnn *>(h);
        const long T = r.T, B = r.B, I = r.I, H = r.H, GH = r.gates() * r.H;
        if (x)
            std::memcpy(ptr(r.x), x, sizeof(float) * T * B * I);
        if (h0)
            std::memcpy(ptr(r.h0), h0, sizeof(float) * B * H);
        if (r.lstm() && c0)
            std::memcpy(ptr(r.c0), c0, sizeof(float) * B * H);
        for (long row = 0; w_ih && row < GH; row++)
            for (long i = 0; i < I; i++)
                ptr(r.w_ih)[weight_index(r, row, i)] = w_ih[row * I + i];
        for (long row = 0; w_hh && row < GH; row++)
            for (long i = 0; i < H; i++)
                ptr(r.w_hh)[weight_index(r, row, i)] = w_hh[row * H + i];
        if (b_ih || b_hh)
            set_bias(r, b_ih, b_hh);
        if (r.backward && dout)
            std::memcpy(ptr(r.dout), dout, sizeof(float) * T * B * H);
        if (r.backward && dh_n)
            std::memcpy(ptr(r.dh_n), dh_n, sizeof(float) * B * H);
        if (r.backward && r.lstm() && dc_n)
            std::memcpy(ptr(r.dc_n), dc_n, sizeof(float) * B * H);
    });
}

// Copies results out in crnn's layout: out (T,B,H), h_n (B,H), c_n (B,H,
// LSTM only), and for a fwd+bwd handle dx (T,B,I), dh0 (B,H), dc0 (B,H,
// LSTM only), dw_ih (G·H,I), dw_hh (G·H,H), db_ih and db_hh (G·H). Any
// pointer may be NULL: skipped; those a handle does not compute are left
// untouched.
__attribute__((visibility("default"))) int
onednn_rnn_get_outputs(void *h, float *out, float *h_n, float *c_n, float *dx, float *dh0,
                       float *dc0, float *dw_ih, float *dw_hh, float *db_ih, float *db_hh)
{
    return guarded([&] {
        Rnn &r = *static_cast<Rnn *>(h);
        const long T = r.T, B = r.B, I = r.I, H = r.H, GH = r.gates() * r.H;
        if (out)
            std::memcpy(out, ptr(r.out), sizeof(float) * T * B * H);
        if (h_n)
            std::memcpy(h_n, ptr(r.h_n), sizeof(float) * B * H);
        if (r.lstm() && c_n)
            std::memcpy(c_n, ptr(r.c_n), sizeof(float) * B * H);
        if (!r.backward)
            return;
        if (dx)
            std::memcpy(dx, ptr(r.dx), sizeof(float) * T * B * I);
        if (dh0)
            std::memcpy(dh0, ptr(r.dh0), sizeof(float) * B * H);
        if (r.lstm() && dc0)
            std::memcpy(dc0, ptr(r.dc0), sizeof(float) * B * H);
        for (long row = 0; dw_ih && row < GH; row++)
            for (long i = 0; i < I; i++)
                dw_ih[row * I + i] = ptr(r.dw_ih)[weight_index(r, row, i)];
        for (long row = 0; dw_hh && row < GH; row++)
            for (long i = 0; i < H; i++)
                dw_hh[row * H + i] = ptr(r.dw_hh)[weight_index(r, row, i)];
        for (long row = 0; db_ih && row < GH; row++)
            db_ih[row] = ptr(r.db)[bias_index(r, row, false)];
        for (long row = 0; db_hh && row < GH; row++)
            db_hh[row] = ptr(r.db)[bias_index(r, row, true)];
    });
}

// One forward (and, for a fwd+bwd handle, backward) pass. 0 on success.
__attribute__((visibility("default"))) int onednn_rnn_run(void *h)
{
    return guarded([&] {
        Rnn &r = *static_cast<Rnn *>(h);
        ThreadScope ts(r.threads);
        run(r);
    });
}

__attribute__((visibility("default"))) void onednn_rnn_destroy(void *h)
{
    delete static_cast<Rnn *>(h);
}

} // extern "C"
