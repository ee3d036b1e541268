// oneDNN's vanilla RNN (tanh, one layer, left to right) behind a small C API,
// so that the Python benchmarks can time it next to crnn through ctypes.
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
// plain ldigo):
//   - forward: a forward_inference primitive (fwd only) or a
//     forward_training primitive that also fills the workspace (fwd+bwd);
//   - backward (fwd+bwd only): the backward primitive, computing dx, dh0,
//     dW_ih, dW_hh and db from dout and dh_n.
// The primitives choose their weight layouts (format `any`); the reorders
// from the user's plain weights into those layouts, and of the weight
// gradients back to plain, are part of run(), as crnn and PyTorch also pack
// their weights on every call. Weight gradients are zeroed in run() because
// oneDNN accumulates into them. oneDNN has a single bias vector: b_ih + b_hh.
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
#include <new>
#include <string>
#include <unordered_map>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

thread_local std::string last_error;

struct Rnn {
    long T, B, I, H;
    int threads;
    bool backward;
    engine eng;
    stream strm;

    // user (plain) memories
    memory x, h0, w_ih, w_hh, bias, out, h_n;
    memory dx, dh0, dw_ih, dw_hh, db, dout, dh_n;

    // primitive-side memories (may alias the user ones)
    memory fwd_w_ih, fwd_w_hh, bwd_w_ih, bwd_w_hh, bwd_dw_ih, bwd_dw_hh;
    memory workspace;

    primitive fwd, bwd;
    std::unordered_map<int, memory> fwd_args, bwd_args;
    bool fwd_reorder_ih = false, fwd_reorder_hh = false;
    bool bwd_reorder_ih = false, bwd_reorder_hh = false;
    bool bwd_reorder_dih = false, bwd_reorder_dhh = false;
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

// The primitive's memory for a weight: the user's own memory when the
// primitive accepts its layout, else a new one (then a reorder is needed).
memory pick(const memory::desc &want, const memory &user, const engine &eng, bool &reorder)
{
    reorder = !(want == user.get_desc());
    return reorder ? memory(want, eng) : user;
}

void zero(const memory &m)
{
    std::memset(m.get_data_handle(), 0, m.get_desc().get_size());
}

void build(Rnn &r)
{
    const memory::dim T = r.T, B = r.B, I = r.I, H = r.H;
    engine &eng = r.eng;

    auto x_md = md({T, B, I}, tag::tnc);
    auto out_md = md({T, B, H}, tag::tnc);
    auto iter_md = md({1, 1, B, H}, tag::ldnc);
    auto wih_md = md({1, 1, I, 1, H}, tag::ldigo);
    auto whh_md = md({1, 1, H, 1, H}, tag::ldigo);
    auto bias_md = md({1, 1, 1, H}, tag::ldgo);
    auto wih_any = md({1, 1, I, 1, H}, tag::any);
    auto whh_any = md({1, 1, H, 1, H}, tag::any);

    r.x = memory(x_md, eng);
    r.h0 = memory(iter_md, eng);
    r.w_ih = memory(wih_md, eng);
    r.w_hh = memory(whh_md, eng);
    r.bias = memory(bias_md, eng);
    r.out = memory(out_md, eng);
    r.h_n = memory(iter_md, eng);
    for (memory *m : {&r.x, &r.h0, &r.w_ih, &r.w_hh, &r.bias, &r.out, &r.h_n})
        zero(*m);

    const prop_kind pk = r.backward ? prop_kind::forward_training : prop_kind::forward_inference;
    const algorithm act = algorithm::eltwise_tanh;
    const rnn_direction dir = rnn_direction::unidirectional_left2right;

#if DNNL_VERSION_MAJOR >= 3
    vanilla_rnn_forward::primitive_desc fpd(eng, pk, act, dir, x_md, iter_md, wih_any, whh_any,
                                            bias_md, out_md, iter_md);
#else
    vanilla_rnn_forward::desc fdesc(pk, act, dir, x_md, iter_md, wih_any, whh_any, bias_md,
                                    out_md, iter_md);
    vanilla_rnn_forward::primitive_desc fpd(fdesc, eng);
#endif
    r.fwd_w_ih = pick(fpd.weights_layer_desc(), r.w_ih, eng, r.fwd_reorder_ih);
    r.fwd_w_hh = pick(fpd.weights_iter_desc(), r.w_hh, eng, r.fwd_reorder_hh);
    r.fwd = vanilla_rnn_forward(fpd);
    r.fwd_args = {{DNNL_ARG_SRC_LAYER, r.x},          {DNNL_ARG_SRC_ITER, r.h0},
                  {DNNL_ARG_WEIGHTS_LAYER, r.fwd_w_ih}, {DNNL_ARG_WEIGHTS_ITER, r.fwd_w_hh},
                  {DNNL_ARG_BIAS, r.bias},             {DNNL_ARG_DST_LAYER, r.out},
                  {DNNL_ARG_DST_ITER, r.h_n}};
    if (!r.backward)
        return;

    r.workspace = memory(fpd.workspace_desc(), eng);
    r.fwd_args[DNNL_ARG_WORKSPACE] = r.workspace;

    r.dx = memory(x_md, eng);
    r.dh0 = memory(iter_md, eng);
    r.dw_ih = memory(wih_md, eng);
    r.dw_hh = memory(whh_md, eng);
    r.db = memory(bias_md, eng);
    r.dout = memory(out_md, eng);
    r.dh_n = memory(iter_md, eng);
    for (memory *m : {&r.dx, &r.dh0, &r.dw_ih, &r.dw_hh, &r.db, &r.dout, &r.dh_n})
        zero(*m);

#if DNNL_VERSION_MAJOR >= 3
    vanilla_rnn_backward::primitive_desc bpd(
        eng, prop_kind::backward, act, dir, x_md, iter_md, wih_any, whh_any, bias_md, out_md,
        iter_md, x_md, iter_md, wih_any, whh_any, bias_md, out_md, iter_md, fpd);
#else
    vanilla_rnn_backward::desc bdesc(prop_kind::backward, act, dir, x_md, iter_md, wih_any,
                                     whh_any, bias_md, out_md, iter_md, x_md, iter_md, wih_any,
                                     whh_any, bias_md, out_md, iter_md);
    vanilla_rnn_backward::primitive_desc bpd(bdesc, eng, fpd);
#endif
    r.bwd_w_ih = pick(bpd.weights_layer_desc(), r.w_ih, eng, r.bwd_reorder_ih);
    r.bwd_w_hh = pick(bpd.weights_iter_desc(), r.w_hh, eng, r.bwd_reorder_hh);
    r.bwd_dw_ih = pick(bpd.diff_weights_layer_desc(), r.dw_ih, eng, r.bwd_reorder_dih);
    r.bwd_dw_hh = pick(bpd.diff_weights_iter_desc(), r.dw_hh, eng, r.bwd_reorder_dhh);
    r.bwd = vanilla_rnn_backward(bpd);
    r.bwd_args = {{DNNL_ARG_SRC_LAYER, r.x},
                  {DNNL_ARG_SRC_ITER, r.h0},
                  {DNNL_ARG_WEIGHTS_LAYER, r.bwd_w_ih},
                  {DNNL_ARG_WEIGHTS_ITER, r.bwd_w_hh},
                  {DNNL_ARG_BIAS, r.bias},
                  {DNNL_ARG_DST_LAYER, r.out},
                  {DNNL_ARG_DST_ITER, r.h_n},
                  {DNNL_ARG_DIFF_SRC_LAYER, r.dx},
                  {DNNL_ARG_DIFF_SRC_ITER, r.dh0},
                  {DNNL_ARG_DIFF_WEIGHTS_LAYER, r.bwd_dw_ih},
                  {DNNL_ARG_DIFF_WEIGHTS_ITER, r.bwd_dw_hh},
                  {DNNL_ARG_DIFF_BIAS, r.db},
                  {DNNL_ARG_DIFF_DST_LAYER, r.dout},
                  {DNNL_ARG_DIFF_DST_ITER, r.dh_n},
                  {DNNL_ARG_WORKSPACE, r.workspace}};
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

// Creates the primitives and their memory. threads <= 0: OpenMP's default.
// Returns NULL on error (see onednn_rnn_last_error).
__attribute__((visibility("default"))) void *onednn_rnn_create(long T, long B, long I, long H,
                                                               int threads, int with_backward)
{
    Rnn *r = nullptr;
    int rc = guarded([&] {
        ThreadScope ts(threads);
        r = new Rnn();
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

// Copies inputs given in crnn's layout: x (T,B,I), h0 (B,H), w_ih (H,I),
// w_hh (H,H), bias (H) = b_ih + b_hh, and for a fwd+bwd handle dout (T,B,H)
// and dh_n (B,H) (ignored otherwise). Any pointer may be NULL: left as is.
__attribute__((visibility("default"))) int
onednn_rnn_set_inputs(void *h, const float *x, const float *h0, const float *w_ih,
                      const float *w_hh, const float *bias, const float *dout, const float *dh_n)
{
    return guarded([&] {
        Rnn &r = *static_cast<Rnn *>(h);
        const long T = r.T, B = r.B, I = r.I, H = r.H;
        if (x)
            std::memcpy(ptr(r.x), x, sizeof(float) * T * B * I);
        if (h0)
            std::memcpy(ptr(r.h0), h0, sizeof(float) * B * H);
        if (w_ih) // ldigo: [i][h] = W_ih[h][i]
            for (long o = 0; o < H; o++)
                for (long i = 0; i < I; i++)
                    ptr(r.w_ih)[i * H + o] = w_ih[o * I + i];
        if (w_hh)
            for (long o = 0; o < H; o++)
                for (long i = 0; i < H; i++)
                    ptr(r.w_hh)[i * H + o] = w_hh[o * H + i];
        if (bias)
            std::memcpy(ptr(r.bias), bias, sizeof(float) * H);
        if (r.backward && dout)
            std::memcpy(ptr(r.dout), dout, sizeof(float) * T * B * H);
        if (r.backward && dh_n)
            std::memcpy(ptr(r.dh_n), dh_n, sizeof(float) * B * H);
    });
}

// Copies results out in crnn's layout: out (T,B,H), h_n (B,H), and for a
// fwd+bwd handle dx (T,B,I), dh0 (B,H), dw_ih (H,I), dw_hh (H,H), db (H).
// Any pointer may be NULL: skipped.
__attribute__((visibility("default"))) int
onednn_rnn_get_outputs(void *h, float *out, float *h_n, float *dx, float *dh0, float *dw_ih,
                       float *dw_hh, float *db)
{
    return guarded([&] {
        Rnn &r = *static_cast<Rnn *>(h);
        const long T = r.T, B = r.B, I = r.I, H = r.H;
        if (out)
            std::memcpy(out, ptr(r.out), sizeof(float) * T * B * H);
        if (h_n)
            std::memcpy(h_n, ptr(r.h_n), sizeof(float) * B * H);
        if (!r.backward)
            return;
        if (dx)
            std::memcpy(dx, ptr(r.dx), sizeof(float) * T * B * I);
        if (dh0)
            std::memcpy(dh0, ptr(r.dh0), sizeof(float) * B * H);
        if (dw_ih)
            for (long o = 0; o < H; o++)
                for (long i = 0; i < I; i++)
                    dw_ih[o * I + i] = ptr(r.dw_ih)[i * H + o];
        if (dw_hh)
            for (long o = 0; o < H; o++)
                for (long i = 0; i < H; i++)
                    dw_hh[o * H + i] = ptr(r.dw_hh)[i * H + o];
        if (db)
            std::memcpy(db, ptr(r.db), sizeof(float) * H);
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
