/*
 * A tiny extension that calls crnn's kernels from C through the capsule
 * (crnn_api.h), with no Python call in between: what another library's
 * extension would do. Built by tests/test_c_api.py against the installed
 * crnn (include_dirs=[crnn.get_include()]); arrays come in through the
 * buffer protocol, C-contiguous, float32 or float64.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "crnn_api.h"

static const crnn_api *crnn;

/* The code of a cell, activation or instruction set by name, or -1. */
static int cell_code(const char *name)
{
    crnn_cell_info info;
    for (int c = 0; crnn->cell_info_get(c, &info) == CRNN_OK; c++)
        if (strcmp(info.name, name) == 0)
            return c;
    return -1;
}

static int activation_code(const char *name)
{
    for (int a = 0; crnn->activation_name(a) != NULL; a++)
        if (strcmp(crnn->activation_name(a), name) == 0)
            return a;
    return -1;
}

/* The buffers a call holds, released together. */
typedef struct {
    Py_buffer views[16];
    int n;
} buffers;

static void release_all(buffers *b)
{
    for (int i = 0; i < b->n; i++)
        PyBuffer_Release(&b->views[i]);
    b->n = 0;
}

/* obj's data (NULL for None), checked to hold `dtype` elements. */
static int data_of(buffers *b, PyObject *obj, int writable, int dtype, void **data)
{
    *data = NULL;
    if (obj == Py_None)
        return 0;
    Py_buffer *v = &b->views[b->n];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, v, flags) < 0)
        return -1;
    b->n++;
    const char want = dtype == CRNN_F32 ? 'f' : 'd';
    if (v->format == NULL || v->format[0] != want || v->format[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "expected %s buffers, got format %s",
                     dtype == CRNN_F32 ? "float32" : "float64", v->format ? v->format : "?");
        return -1;
    }
    *data = v->buf;
    return 0;
}

/* cell_info(name) -> (gates, states, saved_gates tuple) */
static PyObject *py_cell_info(PyObject *self, PyObject *args)
{
    const char *name;
    if (!PyArg_ParseTuple(args, "s", &name))
        return NULL;
    crnn_cell_info info;
    int code = cell_code(name);
    if (code < 0 || crnn->cell_info_get(code, &info) != CRNN_OK)
        return PyErr_Format(PyExc_ValueError, "unknown cell %s", name);
    PyObject *saved = PyTuple_New(info.saved);
    for (int k = 0; saved && k < info.saved; k++)
        PyTuple_SET_ITEM(saved, k, PyLong_FromLong(info.saved_gates[k]));
    return Py_BuildValue("(iiN)", info.gates, info.states, saved);
}

/*
 * forward(cell, dtype, activation, output_activation, (I, H, O),
 *         (w_ih, w_hh, b_ih, b_hh, w_ho, b_ho), x, lengths, states0,
 *         out, states_n, saved)
 * The arrays are allocated by the caller; lengths is int64 or None; the
 * tuples of states and saved arrays hold the cell's count.
 */
static PyObject *py_forward(PyObject *self, PyObject *args)
{
    const char *cell, *dtype_name, *act, *out_act;
    long long I, H, O;
    PyObject *weights, *x, *lengths, *states0, *out, *states_n, *saved;
    if (!PyArg_ParseTuple(args, "ssss(LLL)O!OOO!OO!O!", &cell, &dtype_name, &act, &out_act, &I, &H,
                          &O, &PyTuple_Type, &weights, &x, &lengths, &PyTuple_Type, &states0, &out,
                          &PyTuple_Type, &states_n, &PyTuple_Type, &saved))
        return NULL;
    crnn_layer layer = {cell_code(cell),
                        strcmp(dtype_name, "float32") == 0 ? CRNN_F32 : CRNN_F64,
                        activation_code(act),
                        activation_code(out_act),
                        I,
                        H,
                        O};
    crnn_weights w;
    crnn_sequence s;
    memset(&w, 0, sizeof w);
    memset(&s, 0, sizeof s);
    buffers b = {.n = 0};
    const void **slots[6] = {&w.w_ih, &w.w_hh, &w.b_ih, &w.b_hh, &w.w_ho, &w.b_ho};
    if (PyTuple_GET_SIZE(weights) != 6 || PyTuple_GET_SIZE(states0) > CRNN_MAX_STATES ||
        PyTuple_GET_SIZE(states_n) > CRNN_MAX_STATES || PyTuple_GET_SIZE(saved) > CRNN_MAX_SAVED) {
        PyErr_SetString(PyExc_ValueError, "wrong tuple sizes");
        return NULL;
    }
    void *p;
    for (int k = 0; k < 6; k++) {
        if (data_of(&b, PyTuple_GET_ITEM(weights, k), 0, layer.dtype, &p) < 0)
            goto fail;
        *slots[k] = p;
    }
    if (data_of(&b, x, 0, layer.dtype, &p) < 0)
        goto fail;
    s.x = p;
    if (b.views[b.n - 1].ndim != 3) {
        PyErr_SetString(PyExc_ValueError, "x must be (T, B, I)");
        goto fail;
    }
    s.steps = b.views[b.n - 1].shape[0];
    s.batch = b.views[b.n - 1].shape[1];
    if (data_of(&b, out, 1, layer.dtype, &s.out) < 0)
        goto fail;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(states0); k++) {
        if (data_of(&b, PyTuple_GET_ITEM(states0, k), 0, layer.dtype, &p) < 0)
            goto fail;
        s.state0[k] = p;
    }
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(states_n); k++)
        if (data_of(&b, PyTuple_GET_ITEM(states_n, k), 1, layer.dtype, &s.state_n[k]) < 0)
            goto fail;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(saved); k++)
        if (data_of(&b, PyTuple_GET_ITEM(saved, k), 1, layer.dtype, &s.saved[k]) < 0)
            goto fail;
    if (lengths != Py_None) {
        Py_buffer *v = &b.views[b.n];
        if (PyObject_GetBuffer(lengths, v, PyBUF_C_CONTIGUOUS) < 0)
            goto fail;
        b.n++;
        s.lengths = v->buf;
    }
    PyThreadState *saved_thread = PyEval_SaveThread(); /* the kernels need no GIL */
    int status = crnn->forward(&layer, &w, &s);
    PyEval_RestoreThread(saved_thread);
    release_all(&b);
    return PyLong_FromLong(status);
fail:
    release_all(&b);
    return NULL;
}

/* total_norm(dtype, arrays, p) through the table */
static PyObject *py_total_norm(PyObject *self, PyObject *args)
{
    const char *dtype_name;
    PyObject *arrays;
    double p;
    if (!PyArg_ParseTuple(args, "sO!d", &dtype_name, &PyTuple_Type, &arrays, &p))
        return NULL;
    int dtype = strcmp(dtype_name, "float32") == 0 ? CRNN_F32 : CRNN_F64;
    Py_ssize_t n = PyTuple_GET_SIZE(arrays);
    if (n > 16)
        return PyErr_Format(PyExc_ValueError, "at most 16 arrays");
    buffers b = {.n = 0};
    const void *ptrs[16];
    int64_t sizes[16];
    for (Py_ssize_t k = 0; k < n; k++) {
        void *d;
        if (data_of(&b, PyTuple_GET_ITEM(arrays, k), 0, dtype, &d) < 0) {
            release_all(&b);
            return NULL;
        }
        ptrs[k] = d;
        sizes[k] = b.views[b.n - 1].len / b.views[b.n - 1].itemsize;
    }
    double total = crnn->total_norm(dtype, n, ptrs, sizes, p);
    release_all(&b);
    return PyFloat_FromDouble(total);
}

/* facts() -> (get_num_threads, isa name, compiler) */
static PyObject *py_facts(PyObject *self, PyObject *noargs)
{
    return Py_BuildValue("(iss)", crnn->get_num_threads(), crnn->isa_name(crnn->get_isa()),
                         crnn->compiler());
}

static PyMethodDef methods[] = {
    {"cell_info", py_cell_info, METH_VARARGS, "(gates, states, saved_gates) of a cell"},
    {"forward", py_forward, METH_VARARGS, "crnn_forward through the capsule; the status"},
    {"total_norm", py_total_norm, METH_VARARGS, "crnn_total_norm through the capsule"},
    {"facts", py_facts, METH_NOARGS, "(threads, isa, compiler) through the capsule"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "crnn_demo_c", NULL, -1, methods};

PyMODINIT_FUNC PyInit_crnn_demo_c(void)
{
    crnn = crnn_import_api();
    if (crnn == NULL)
        return NULL;
    return PyModule_Create(&module);
}
