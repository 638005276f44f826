/* MySQL's LOAD DATA encoding in C: the compiled twin of store/mysql.py's Python encoder (``_py_encoder``), which
 * stays the reference; tests/store/test_loaddata.py compares the two on generated rows.
 *
 * encode(rows, kinds) -> bytes
 *
 *   rows   a list of (sheet row, values): the row number (int) and a sequence of one value per column
 *   kinds  bytes, one per column: b'b' a boolean column (1 or 0 by truth), b't' a text column (escaped), b'o' any
 *          other column (str() of the value, unescaped, as the Python encoder does)
 *
 * Each row becomes one line of LOAD DATA's default format: the values separated by tabs, ``\N`` for None, a text's
 * backslash, tab, newline and carriage return escaped, then a tab and the row number. Values are written
 * here when their text is known without Python (str, int within 64 bits, float by repr, naive date, datetime and
 * time: the same text as str()); anything else (Decimal, a datetime with a zone, a big int, a subclass) takes
 * str(), as the Python encoder does, so the output is byte for byte the same.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <string.h>

typedef struct {
    char *data;
    Py_ssize_t size, room;
} Buffer;

static int grow(Buffer *b, Py_ssize_t more) {
    if (b->size + more <= b->room)
        return 0;
    Py_ssize_t room = b->room * 2;
    if (room < b->size + more)
        room = b->size + more + 4096;
    char *data = PyMem_Realloc(b->data, room);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->room = room;
    return 0;
}

static int put(Buffer *b, const char *s, Py_ssize_t n) {
    if (grow(b, n) < 0)
        return -1;
    memcpy(b->data + b->size, s, n);
    b->size += n;
    return 0;
}

static int put_escaped(Buffer *b, const char *s, Py_ssize_t n) {
    if (grow(b, 2 * n) < 0) /* at most two bytes for each */
        return -1;
    char *out = b->data + b->size;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        switch (c) {
        case '\\': *out++ = '\\'; *out++ = '\\'; break;
        case '\t': *out++ = '\\'; *out++ = 't'; break;
        case '\n': *out++ = '\\'; *out++ = 'n'; break;
        case '\r': *out++ = '\\'; *out++ = 'r'; break;
        default: *out++ = c;
        }
    }
    b->size = out - b->data;
    return 0;
}

static int put_long(Buffer *b, long long v) {
    char digits[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (grow(b, n + 1) < 0)
        return -1;
    if (v < 0)
        b->data[b->size++] = '-';
    while (n)
        b->data[b->size++] = digits[--n];
    return 0;
}

/* ``width`` digits of ``v``, zero-padded (v >= 0, fits). */
static void digits(char *out, int v, int width) {
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* ``first`` in ``width`` digits, ``sep``, two digits, ``sep``, two digits: 2024-01-02 or 10:00:00. */
static int put_three(Buffer *b, int first, int width, char sep, int second, int third) {
    if (grow(b, width + 6) < 0)
        return -1;
    char *out = b->data + b->size;
    digits(out, first, width);
    out[width] = sep;
    digits(out + width + 1, second, 2);
    out[width + 3] = sep;
    digits(out + width + 4, third, 2);
    b->size += width + 6;
    return 0;
}

static int put_date(Buffer *b, int year, int month, int day) { return put_three(b, year, 4, '-', month, day); }

static int put_clock(Buffer *b, int hour, int minute, int second, int micro) {
    if (put_three(b, hour, 2, ':', minute, second) < 0 || grow(b, 7) < 0)
        return -1;
    if (micro) {
        b->data[b->size] = '.';
        digits(b->data + b->size + 1, micro, 6);
        b->size += 7;
    }
    return 0;
}

static int put_str(Buffer *b, PyObject *text, int escape) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (!s)
        return -1;
    return escape ? put_escaped(b, s, n) : put(b, s, n);
}

/* str(v), as the Python encoder writes it. */
static int put_any(Buffer *b, PyObject *v, int escape) {
    PyObject *text = PyObject_Str(v);
    if (!text)
        return -1;
    int failed = put_str(b, text, escape);
    Py_DECREF(text);
    return failed;
}

static int put_value(Buffer *b, PyObject *v, char kind) {
    if (v == Py_None)
        return put(b, "\\N", 2);
    if (kind == 'b') {
        int truth = PyObject_IsTrue(v);
        if (truth < 0)
            return -1;
        return put(b, truth ? "1" : "0", 1);
    }
    if (PyUnicode_CheckExact(v))
        return put_str(b, v, kind == 't');
    if (kind == 't')
        return put_any(b, v, 1);
    if (PyLong_CheckExact(v)) {
        int overflow;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (n == -1 && PyErr_Occurred())
            return -1;
        return overflow ? put_any(b, v, 0) : put_long(b, n);
    }
    if (PyFloat_CheckExact(v)) { /* float.__repr__, which is its str() */
        char *text = PyOS_double_to_string(PyFloat_AS_DOUBLE(v), 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (!text)
            return -1;
        int failed = put(b, text, (Py_ssize_t)strlen(text));
        PyMem_Free(text);
        return failed;
    }
    if (PyDateTime_CheckExact(v) && PyDateTime_DATE_GET_TZINFO(v) == Py_None) {
        if (put_date(b, PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v)) < 0 ||
            put(b, " ", 1) < 0)
            return -1;
        return put_clock(b, PyDateTime_DATE_GET_HOUR(v), PyDateTime_DATE_GET_MINUTE(v),
                         PyDateTime_DATE_GET_SECOND(v), PyDateTime_DATE_GET_MICROSECOND(v));
    }
    if (PyDate_CheckExact(v))
        return put_date(b, PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v));
    if (PyTime_CheckExact(v) && PyDateTime_TIME_GET_TZINFO(v) == Py_None)
        return put_clock(b, PyDateTime_TIME_GET_HOUR(v), PyDateTime_TIME_GET_MINUTE(v),
                         PyDateTime_TIME_GET_SECOND(v), PyDateTime_TIME_GET_MICROSECOND(v));
    return put_any(b, v, 0);
}

static int put_row(Buffer *b, PyObject *item, const char *kinds, Py_ssize_t width) {
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
        PyErr_SetString(PyExc_TypeError, "each row is a (row number, values) pair");
        return -1;
    }
    PyObject *values = PySequence_Fast(PyTuple_GET_ITEM(item, 1), "a row's values are a sequence");
    if (!values)
        return -1;
    int failed = 0;
    if (PySequence_Fast_GET_SIZE(values) != width) {
        PyErr_Format(PyExc_ValueError, "a row has %zd values for %zd columns", PySequence_Fast_GET_SIZE(values),
                     width);
        failed = -1;
    }
    PyObject **cells = PySequence_Fast_ITEMS(values);
    for (Py_ssize_t j = 0; !failed && j < width; j++)
        failed = put_value(b, cells[j], kinds[j]) < 0 || put(b, "\t", 1) < 0 ? -1 : 0;
    Py_DECREF(values);
    if (failed)
        return -1;
    if (put_value(b, PyTuple_GET_ITEM(item, 0), 'o') < 0)
        return -1;
    return put(b, "\n", 1);
}

static PyObject *encode(PyObject *self, PyObject *args) {
    PyObject *rows;
    const char *kinds;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "O!y#", &PyList_Type, &rows, &kinds, &width))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(rows);
    Buffer b = {NULL, 0, 0};
    if (grow(&b, count * (16 * width + 8) + 64) < 0)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (put_row(&b, PyList_GET_ITEM(rows, i), kinds, width) < 0) {
            PyMem_Free(b.data);
            return NULL;
        }
    }
    PyObject *out = PyBytes_FromStringAndSize(b.data, b.size);
    PyMem_Free(b.data);
    return out;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS, "encode(rows, kinds) -> LOAD DATA's bytes for the rows (see the file's head)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_loaddata", NULL, 0, methods};

PyMODINIT_FUNC PyInit__loaddata(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI)
        return NULL;
    return PyModule_Create(&module);
}
