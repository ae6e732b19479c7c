/* MappedBuffer: see _linux_buffer.h. Built with the full (not limited) C API: buffer slots in
 * PyType_FromSpec need it before Python 3.11. */
#include <Python.h>

#include "_linux_buffer.h"

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
