/* An import's cell checks and its COPY encoding in C: a block of sheet rows (as the reader gives them) -> the
 * lines of PostgreSQL's COPY text format, for the common column types, without a Python object per cell.
 *
 * encode(rows, spec, position, fallback) -> bytes
 *
 *   rows      [(row number, values)], values indexed by sheet column (the reader's rows)
 *   spec      one tuple per table column, in table order: (source, kind, nullable, length, precision, scale)
 *             source the sheet column; kind 0 integer, 1 float, 2 numeric, 3 text, 4 date, 5 timestamp,
 *             6 boolean (written True or False, as PostgreSQL reads it), 7 boolean written 1 or 0 (MySQL's
 *             LOAD DATA, the same text format otherwise); length, precision and scale -1 where there is none
 *   position  added to each row number for the line's last field (the staged row), or -1: no such field
 *   fallback  fallback(number, values) -> bytes: the row's line as the Python path writes it
 *             (validate.convert_rows, then the store's text encoder), problems and all
 *
 * A row is written here only when every cell is one this file reads the way the Python path does (validate.py's
 * converters, then str() of the value, a text escaped as COPY wants): an int, a float, a str, a naive datetime, a
 * bool, an empty cell where the column allows NULL. Any other cell (a text in a number column, an error value, a
 * value that does not fit: too long, too many decimals, a time in a date column...) sends the whole row to
 * ``fallback``, which says what is wrong at which cell. So this file holds no message and no rule the Python path
 * does not hold; tests/pipeline/test_encode.py compares the two on generated cells.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
#include <string.h>

enum { K_INTEGER, K_FLOAT, K_NUMERIC, K_TEXT, K_DATE, K_TIMESTAMP, K_BOOLEAN, K_FLAG, K_KINDS };

struct column {
    Py_ssize_t source;
    int kind, nullable;
    long length, precision, scale;
};

struct out {
    char *data;
    Py_ssize_t size, used;
};

static int grow(struct out *o, Py_ssize_t more) {
    if (o->used + more <= o->size)
        return 0;
    Py_ssize_t size = o->size ? o->size : 1 << 16;
    while (size < o->used + more)
        size *= 2;
    char *data = PyMem_Realloc(o->data, size);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->data = data;
    o->size = size;
    return 0;
}

static int put(struct out *o, const char *p, Py_ssize_t n) {
    if (grow(o, n) < 0)
        return -1;
    memcpy(o->data + o->used, p, n);
    o->used += n;
    return 0;
}

static int put_ll(struct out *o, long long x) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", x);
    return put(o, buf, n);
}

/* 1: written; 0: the Python path must write this cell (no exception); -1: a failure of its own. */
#define WRITE_OR(expr)                                                                                          \
    do {                                                                                                        \
        if ((expr) < 0)                                                                                         \
            return -1;                                                                                          \
    } while (0)

/* An exact int as a long long: 1; 0 where it does not fit (no exception). */
static int small_int(PyObject *v, long long *x) {
    int overflow;
    *x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (*x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* The digits of x (no sign) counted as Decimal counts a whole part's: 0 has none. */
static int digits_of(unsigned long long x) {
    int n = 0;
    for (; x; x /= 10)
        n++;
    return n;
}

static int zeros(struct out *o, long n) {
    if (grow(o, n) < 0)
        return -1;
    memset(o->data + o->used, '0', n);
    o->used += n;
    return 0;
}

/* A numeric column from an int: Decimal(v), quantized to the scale, within the precision. */
static int numeric_int(struct out *o, const struct column *c, PyObject *v) {
    long long x;
    if (!small_int(v, &x))
        return 0;
    unsigned long long mag = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    int whole = digits_of(mag);
    if (c->scale >= 0 && whole + c->scale > 28) /* past Decimal's 28 digits: quantize() refuses, Python says so */
        return 0;
    if (c->precision >= 0 && whole > c->precision - (c->scale > 0 ? c->scale : 0))
        return 0;
    WRITE_OR(put_ll(o, x));
    if (c->scale > 0) {
        WRITE_OR(put(o, ".", 1));
        WRITE_OR(zeros(o, c->scale));
    }
    return 1;
}

/* A numeric column from a float: Decimal(repr(v)), quantized to the scale (no digit lost), within the precision. */
static int numeric_float(struct out *o, const struct column *c, double d) {
    char *r = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (r == NULL)
        return -1;
    int result = 0;
    const char *p = r;
    if (strpbrk(r, "eEni") != NULL) /* 1e+16, inf, nan: Decimal writes these its own way */
        goto done;
    const char *dot = strchr(r, '.');
    const char *start = *p == '-' ? p + 1 : p;
    if (dot == NULL)
        goto done;
    const char *a = start;
    while (a < dot && *a == '0')
        a++;
    long whole = (long)(dot - a);
    const char *frac = dot + 1;
    long frac_len = (long)strlen(frac), significant = frac_len;
    while (significant > 0 && frac[significant - 1] == '0')
        significant--;
    if (c->scale >= 0) {
        if (significant > c->scale || whole + c->scale > 28)
            goto done;
        if (c->precision >= 0 && whole > c->precision - c->scale)
            goto done;
        if (put(o, r, dot - r) < 0)
            goto fail;
        if (c->scale > 0) {
            long keep = frac_len < c->scale ? frac_len : c->scale;
            if (put(o, dot, 1 + keep) < 0 || zeros(o, c->scale - keep) < 0)
                goto fail;
        }
    } else {
        if (c->precision >= 0 && whole > c->precision)
            goto done;
        if (put(o, r, (Py_ssize_t)strlen(r)) < 0)
            goto fail;
    }
    result = 1;
done:
    PyMem_Free(r);
    return result;
fail:
    PyMem_Free(r);
    return -1;
}

static int text(struct out *o, const struct column *c, PyObject *v) {
    if (c->length >= 0 && PyUnicode_GET_LENGTH(v) > c->length)
        return 0;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(v, &n);
    if (s == NULL) { /* lone surrogates: the Python path decides */
        PyErr_Clear();
        return 0;
    }
    if (grow(o, 2 * n) < 0)
        return -1;
    char *w = o->data + o->used;
    for (Py_ssize_t i = 0; i < n; i++) {
        char ch = s[i];
        switch (ch) {
        case '\\': *w++ = '\\', *w++ = '\\'; break;
        case '\t': *w++ = '\\', *w++ = 't'; break;
        case '\n': *w++ = '\\', *w++ = 'n'; break;
        case '\r': *w++ = '\\', *w++ = 'r'; break;
        default: *w++ = ch;
        }
    }
    o->used = w - o->data;
    return 1;
}

static int repr_of(struct out *o, double d) {
    char *r = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (r == NULL)
        return -1;
    int failed = put(o, r, (Py_ssize_t)strlen(r));
    PyMem_Free(r);
    return failed < 0 ? -1 : 1;
}

/* One cell; 1 written, 0 for the Python path, -1 failed. */
static int cell(struct out *o, const struct column *c, PyObject *v) {
    if (v == Py_None || (c->kind != K_TEXT && PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v) == 0)) {
        if (!c->nullable)
            return 0;
        WRITE_OR(put(o, "\\N", 2));
        return 1;
    }
    switch (c->kind) {
    case K_INTEGER:
        if (PyLong_CheckExact(v)) {
            long long x;
            if (!small_int(v, &x))
                return 0;
            WRITE_OR(put_ll(o, x));
            return 1;
        }
        if (PyFloat_CheckExact(v)) {
            double d = PyFloat_AS_DOUBLE(v);
            if (!(d == floor(d) && fabs(d) < 9.0e18))
                return 0;
            WRITE_OR(put_ll(o, (long long)d));
            return 1;
        }
        return 0;
    case K_FLOAT:
        if (PyFloat_CheckExact(v))
            return repr_of(o, PyFloat_AS_DOUBLE(v));
        if (PyLong_CheckExact(v)) {
            double d = PyLong_AsDouble(v);
            if (d == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                return 0;
            }
            return repr_of(o, d);
        }
        return 0;
    case K_NUMERIC:
        if (PyLong_CheckExact(v))
            return numeric_int(o, c, v);
        if (PyFloat_CheckExact(v))
            return numeric_float(o, c, PyFloat_AS_DOUBLE(v));
        return 0;
    case K_TEXT:
        if (PyUnicode_CheckExact(v))
            return text(o, c, v);
        if (PyLong_CheckExact(v)) {
            long long x;
            if (!small_int(v, &x))
                return 0;
            char buf[32];
            int n = snprintf(buf, sizeof buf, "%lld", x);
            if (c->length >= 0 && n > c->length)
                return 0;
            WRITE_OR(put(o, buf, n));
            return 1;
        }
        return 0;
    case K_DATE:
    case K_TIMESTAMP: {
        if (!PyDateTime_CheckExact(v) || PyDateTime_DATE_GET_TZINFO(v) != Py_None)
            return 0;
        int hour = PyDateTime_DATE_GET_HOUR(v), minute = PyDateTime_DATE_GET_MINUTE(v),
            second = PyDateTime_DATE_GET_SECOND(v), micro = PyDateTime_DATE_GET_MICROSECOND(v);
        char buf[48];
        int n;
        if (c->kind == K_DATE) {
            if (hour || minute || second || micro)
                return 0;
            n = snprintf(buf, sizeof buf, "%04d-%02d-%02d", PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v),
                         PyDateTime_GET_DAY(v));
        } else if (micro) {
            n = snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.%06d", PyDateTime_GET_YEAR(v),
                         PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v), hour, minute, second, micro);
        } else {
            n = snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", PyDateTime_GET_YEAR(v),
                         PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v), hour, minute, second);
        }
        WRITE_OR(put(o, buf, n));
        return 1;
    }
    case K_BOOLEAN:
    case K_FLAG: {
        int truth;
        if (v == Py_True || v == Py_False) {
            truth = v == Py_True;
        } else if (PyLong_CheckExact(v)) {
            long long x;
            if (!small_int(v, &x) || (x != 0 && x != 1))
                return 0;
            truth = (int)x;
        } else if (PyFloat_CheckExact(v)) {
            double d = PyFloat_AS_DOUBLE(v);
            if (d != 0.0 && d != 1.0)
                return 0;
            truth = d == 1.0;
        } else {
            return 0;
        }
        if (c->kind == K_FLAG)
            WRITE_OR(put(o, truth ? "1" : "0", 1));
        else
            WRITE_OR(truth ? put(o, "True", 4) : put(o, "False", 5));
        return 1;
    }
    }
    return 0;
}

static int spec_of(PyObject *spec, struct column **columns, Py_ssize_t *width) {
    if (!PyTuple_Check(spec)) {
        PyErr_SetString(PyExc_TypeError, "spec: a tuple of (source, kind, nullable, length, precision, scale)");
        return -1;
    }
    *width = PyTuple_GET_SIZE(spec);
    *columns = PyMem_Calloc(*width ? *width : 1, sizeof(struct column));
    if (*columns == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t j = 0; j < *width; j++) {
        struct column *c = &(*columns)[j];
        int kind, nullable;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(spec, j), "niplll", &c->source, &kind, &nullable, &c->length,
                              &c->precision, &c->scale))
            return -1;
        if (kind < 0 || kind >= K_KINDS || c->source < 0) {
            PyErr_SetString(PyExc_ValueError, "spec: a kind from 0 to 7, a source from 0");
            return -1;
        }
        c->kind = kind;
        c->nullable = nullable;
    }
    return 0;
}

static PyObject *encode(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4 || !PyList_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "encode(rows: list, spec: tuple, position: int, fallback)");
        return NULL;
    }
    PyObject *rows = args[0], *fallback = args[3];
    long long position = PyLong_AsLongLong(args[2]);
    if (position == -1 && PyErr_Occurred())
        return NULL;
    struct column *columns = NULL;
    Py_ssize_t width;
    struct out o = {NULL, 0, 0};
    PyObject *result = NULL;
    if (spec_of(args[1], &columns, &width) < 0)
        goto end;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows); i++) {
        PyObject *row = PyList_GET_ITEM(rows, i), *number, *values;
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 2 || !PyList_Check(PyTuple_GET_ITEM(row, 1))) {
            PyErr_SetString(PyExc_TypeError, "rows: a list of (number, values: list)");
            goto end;
        }
        number = PyTuple_GET_ITEM(row, 0);
        values = PyTuple_GET_ITEM(row, 1);
        Py_ssize_t n = PyList_GET_SIZE(values), line = o.used;
        int written = 1;
        for (Py_ssize_t j = 0; j < width && written == 1; j++) {
            const struct column *c = &columns[j];
            if (j && put(&o, "\t", 1) < 0)
                goto end;
            written = cell(&o, c, c->source < n ? PyList_GET_ITEM(values, c->source) : Py_None);
        }
        if (written < 0)
            goto end;
        if (written == 1 && position >= 0) {
            long long x = PyLong_AsLongLong(number);
            if (x == -1 && PyErr_Occurred())
                goto end;
            if (put(&o, "\t", 1) < 0 || put_ll(&o, position + x) < 0)
                goto end;
        }
        if (written == 1) {
            if (put(&o, "\n", 1) < 0)
                goto end;
            continue;
        }
        o.used = line; /* the Python path writes this row, and says what is wrong in it */
        PyObject *bytes = PyObject_CallFunctionObjArgs(fallback, number, values, NULL);
        if (bytes == NULL)
            goto end;
        if (!PyBytes_Check(bytes)) {
            Py_DECREF(bytes);
            PyErr_SetString(PyExc_TypeError, "fallback must return bytes");
            goto end;
        }
        int failed = put(&o, PyBytes_AS_STRING(bytes), PyBytes_GET_SIZE(bytes));
        Py_DECREF(bytes);
        if (failed < 0)
            goto end;
    }
    result = PyBytes_FromStringAndSize(o.data ? o.data : "", o.used);
end:
    PyMem_Free(o.data);
    PyMem_Free(columns);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL,
     "encode(rows, spec, position, fallback) -> the rows as COPY text lines (bytes)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_encode", NULL, 0, methods};

PyMODINIT_FUNC PyInit__encode(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    return PyModule_Create(&module);
}
