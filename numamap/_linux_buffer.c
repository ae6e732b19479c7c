/* MappedBuffer: see _linux_buffer.h. Built with the full (not limited) C API: buffer slots in
 * PyType_FromSpec need it before Python 3.11. */
#include <Python.h>

#include <errno.h>

#include "_linux_buffer.h"
#include "_arena.h"

typedef struct {
    PyObject_HEAD
    void *data;
    Py_ssize_t length;
    int readonly;
    int refuse;
    Py_ssize_t exports; /* buffers handed out and not yet released */
} nm_buffer_object;

static int nm_buffer_get(PyObject *self, Py_buffer *view, int flags)
{
    nm_buffer_object *b = (nm_buffer_object *)self;
    if (b->refuse) {
        PyErr_SetString(PyExc_BufferError,
                        "numamap array views export their memory through __array_interface__");
        return -1;
    }
    if (b->data == NULL) {
        PyErr_SetString(PyExc_BufferError, "this numamap view maps no memory (closed or unset)");
        return -1;
    }
    if (PyBuffer_FillInfo(view, self, b->data, b->length, b->readonly, flags) < 0)
        return -1;
    b->exports++;
    return 0;
}

static void nm_buffer_release(PyObject *self, Py_buffer *view)
{
    (void)view;
    ((nm_buffer_object *)self)->exports--;
}

static PyObject *nm_buffer_set(PyObject *self, PyObject *args)
{
    unsigned long long address;
    Py_ssize_t length;
    int readonly, refuse;
    if (!PyArg_ParseTuple(args, "Knpp", &address, &length, &readonly, &refuse))
        return NULL;
    if (length < 0) {
        PyErr_SetString(PyExc_ValueError, "length must not be negative");
        return NULL;
    }
    nm_buffer_object *b = (nm_buffer_object *)self;
    if (b->exports > 0) {
        PyErr_SetString(PyExc_BufferError, "cannot move a buffer while it is exported");
        return NULL;
    }
    b->data = (void *)(uintptr_t)address;
    b->length = length;
    b->readonly = readonly;
    b->refuse = refuse;
    Py_RETURN_NONE;
}

static PyObject *nm_buffer_exports(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(((nm_buffer_object *)self)->exports);
}

static PyMethodDef nm_buffer_methods[] = {
    {"_nm_set_buffer", nm_buffer_set, METH_VARARGS,
     "_nm_set_buffer(address, length, readonly, refuse): the memory this object exports."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef nm_buffer_getset[] = {
    {"_nm_exports", nm_buffer_exports, NULL, "Buffers exported and not yet released.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

uintptr_t nm_buffer_type(void)
{
    PyType_Slot slots[] = {
        {Py_bf_getbuffer, (void *)nm_buffer_get},
        {Py_bf_releasebuffer, (void *)nm_buffer_release},
        {Py_tp_methods, nm_buffer_methods},
        {Py_tp_getset, nm_buffer_getset},
        {Py_tp_new, (void *)PyType_GenericNew},
        {Py_tp_doc, (void *)"Mapped memory exported through the buffer protocol."},
        {0, NULL},
    };
    PyType_Spec spec = {
        "numamap._linux_buffer.MappedBuffer",
        (int)sizeof(nm_buffer_object),
        0,
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
        slots,
    };
    PyGILState_STATE gil = PyGILState_Ensure(); /* cffi calls C with the GIL released */
    PyObject *type = PyType_FromSpec(&spec);
    PyGILState_Release(gil);
    return (uintptr_t)type;
}

/* ---- ArenaBuffer: one arena block ---------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    void *data;
    Py_ssize_t length;
    Py_ssize_t exports;
} nm_block_object;

static int nm_block_get(PyObject *self, Py_buffer *view, int flags)
{
    nm_block_object *b = (nm_block_object *)self;
    if (b->data == NULL) {
        PyErr_SetString(PyExc_BufferError, "this numamap arena block holds no memory (not taken)");
        return -1;
    }
    if (PyBuffer_FillInfo(view, self, b->data, b->length, 0, flags) < 0)
        return -1;
    b->exports++;
    return 0;
}

static void nm_block_release(PyObject *self, Py_buffer *view)
{
    (void)view;
    ((nm_block_object *)self)->exports--;
}

static PyObject *nm_block_take(PyObject *self, PyObject *args)
{
    int node, kind, zero;
    Py_ssize_t length;
    if (!PyArg_ParseTuple(args, "iinp", &node, &kind, &length, &zero))
        return NULL;
    nm_block_object *b = (nm_block_object *)self;
    if (b->data != NULL) {
        PyErr_SetString(PyExc_ValueError, "this arena block already holds memory");
        return NULL;
    }
    if (length < 0) {
        PyErr_SetString(PyExc_ValueError, "nbytes must not be negative");
        return NULL;
    }
    int error = 0;
    void *data;
    if (length <= NM_ARENA_SMALL_MAX && !zero) { /* from a thread cache, mostly: the GIL is cheaper kept */
        data = nm_arena_alloc(node, kind, (size_t)(length ? length : 1), zero, &error);
    } else {
        Py_BEGIN_ALLOW_THREADS
        data = nm_arena_alloc(node, kind, (size_t)(length ? length : 1), zero, &error);
        Py_END_ALLOW_THREADS
    }
    if (data == NULL)
        return PyLong_FromLong(error ? error : ENOMEM);
    b->data = data;
    b->length = length;
    return PyLong_FromLong(0);
}

static void nm_block_dealloc(PyObject *self)
{
    nm_block_object *b = (nm_block_object *)self;
    PyTypeObject *type = Py_TYPE(self);
    if (type->tp_flags & Py_TPFLAGS_HAVE_GC)
        PyObject_GC_UnTrack(self);
    if (b->data != NULL) { /* no buffer can be out: each one holds a reference to us */
        nm_arena_free(b->data);
        b->data = NULL;
    }
    type->tp_free(self);
    Py_DECREF(type);
}

static PyObject *nm_block_address(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromVoidPtr(((nm_block_object *)self)->data);
}

static PyObject *nm_block_nbytes(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(((nm_block_object *)self)->length);
}

static PyObject *nm_block_exports(PyObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(((nm_block_object *)self)->exports);
}

static PyMethodDef nm_block_methods[] = {
    {"_nm_take", nm_block_take, METH_VARARGS,
     "_nm_take(node, kind, nbytes, zero) -> errno: take a block from the arena of (node, kind)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef nm_block_getset[] = {
    {"address", nm_block_address, NULL, "Address of the block's first byte (0: none taken).", NULL},
    {"nbytes", nm_block_nbytes, NULL, "Bytes the block exports.", NULL},
    {"_nm_exports", nm_block_exports, NULL, "Buffers exported and not yet released.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

uintptr_t nm_arena_buffer_type(void)
{
    PyType_Slot slots[] = {
        {Py_bf_getbuffer, (void *)nm_block_get},
        {Py_bf_releasebuffer, (void *)nm_block_release},
        {Py_tp_dealloc, (void *)nm_block_dealloc},
        {Py_tp_methods, nm_block_methods},
        {Py_tp_getset, nm_block_getset},
        {Py_tp_new, (void *)PyType_GenericNew},
        {Py_tp_doc, (void *)"One node-arena block exported through the buffer protocol."},
        {0, NULL},
    };
    PyType_Spec spec = {
        "numamap._linux_buffer.ArenaBuffer",
        (int)sizeof(nm_block_object),
        0,
        Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
        slots,
    };
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *type = PyType_FromSpec(&spec);
    PyGILState_Release(gil);
    return (uintptr_t)type;
}
