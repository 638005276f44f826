/* The export's hot loop in C: row tuples -> the UTF-8 of their worksheet <row>s, exactly as writer._sheet's
 * Python loop writes them (that loop is the reference; tests/formats/xlsx/test_rows.py compares the two).
 *
 * encode(rows, limit, n, pieces, flush, letters, styles, date_style, datetime_style, text, other) -> (data, n, pieces)
 *
 *   rows      an iterator of rows (tuples; any other sequence is read as a tuple of its items)
 *   limit     take at most this many rows
 *   n         the number of the row before the first one taken (rows are numbered from 1)
 *   pieces    how many pieces the Python loop would hold unjoined so far: it joins them once there are more
 *             than ``flush`` (writer._FLUSH_PIECES), after a whole row; counted here the same way so that both
 *             paths cut their chunks, and so close a part past max_part_bytes, after the same row
 *   letters   per column, its letters (str: "A", "B", ...); styles: per column, the style attribute of its
 *             numbers (str: ' s="6"' or ""); date_style, datetime_style: the attribute of dates and datetimes
 *   text      text(c, letter, n, v) -> the cell of a str that needs care (writer._text_cell)
 *   other     other(c, letter, n, v) -> the cell of any other value (writer._other_cell)
 *
 * It stops after ``limit`` rows, at the end of ``rows``, or after the row that takes ``pieces`` past
 * ``flush``; it returns the rows' bytes, the number of the last row taken and the pieces count then.
 *
 * Written here: None (no cell), str of at most SHORT_TEXT characters (escaped as writer._text_cell does), int
 * within the double range, finite float (repr's digits), finite Decimal
 * (str), date with a serial (>= 1900-01-01) and naive datetime from 1900-03-01, bool; each of the exact type
 * only. Every other cell is the Python helpers' (same text, same errors, same WriteStats counts).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
#include <string.h>

#define SHORT_TEXT 16383 /* writer._SHORT_TEXT: MAX_CELL_CHARS // 2 */
#define MAX_LETTERS 8

static PyObject *decimal_type;    /* decimal.Decimal */
static PyObject *int_no_double;   /* writer._INT_NO_DOUBLE: 2**1024 - 2**970 */
static PyObject *int_no_double_n; /* its negative */
static long epoch_ordinal;        /* date(1899, 12, 30).toordinal() */

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} buffer;

static int grow(buffer *b, Py_ssize_t need) {
    if (b->len + need <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + need)
        cap *= 2;
    char *p = PyMem_Realloc(b->p, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline int put(buffer *b, const char *s, Py_ssize_t n) {
    if (grow(b, n) < 0)
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

#define PUT(b, literal) put(b, literal, sizeof(literal) - 1)

/* The decimal digits of v, ending at end (no terminator); returns where they start. */
static char *digits_of(long long v, char *end) {
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--end = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--end = '-';
    return end;
}

static int put_str(buffer *b, PyObject *s) { /* an ASCII or UTF-8 str object, as UTF-8 */
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(s, &n);
    return u == NULL ? -1 : put(b, u, n);
}

/* The proleptic Gregorian ordinal of a date (date.toordinal). */
static long ordinal(int y, int m, int d) {
    static const int before[] = {0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    long y1 = y - 1;
    long days = y1 * 365 + y1 / 4 - y1 / 100 + y1 / 400 + before[m] + d;
    if (m > 2 && (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        days += 1;
    return days;
}

static int edge_space(Py_UCS4 c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int is_hex(Py_UCS4 c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* A text cell as writer._text_cell writes one of at most SHORT_TEXT characters (longer ones are its own: it
 * counts them in UTF-16 units against Excel's limit): xml:space="preserve" for a whitespace first or last, and
 * cells.escape_text's escapes: & < > as entities; C0 controls but tab and newline, surrogates, U+FFFE and U+FFFF
 * as _xHHHH_; an "_" that starts a literal _xHHHH_ as _x005F_. */
static int text_cell(buffer *b, PyObject *v, const char *start, Py_ssize_t start_len) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(v);
    int kind = PyUnicode_KIND(v);
    const void *data = PyUnicode_DATA(v);
    if (grow(b, start_len + 7 * len + 64) < 0) /* at most 7 bytes a character (_xHHHH_) */
        return -1;
    put(b, start, start_len);
    if (len && (edge_space(PyUnicode_READ(kind, data, 0)) || edge_space(PyUnicode_READ(kind, data, len - 1))))
        PUT(b, " t=\"inlineStr\"><is><t xml:space=\"preserve\">");
    else
        PUT(b, " t=\"inlineStr\"><is><t>");
    unsigned char *o = (unsigned char *)b->p + b->len;
    for (Py_ssize_t i = 0; i < len; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c >= 0x20 && c < 0x7f) {
            if (c == '&') {
                memcpy(o, "&amp;", 5);
                o += 5;
            } else if (c == '<') {
                memcpy(o, "&lt;", 4);
                o += 4;
            } else if (c == '>') {
                memcpy(o, "&gt;", 4);
                o += 4;
            } else if (c == '_' && i + 6 < len && PyUnicode_READ(kind, data, i + 1) == 'x' &&
                       is_hex(PyUnicode_READ(kind, data, i + 2)) && is_hex(PyUnicode_READ(kind, data, i + 3)) &&
                       is_hex(PyUnicode_READ(kind, data, i + 4)) && is_hex(PyUnicode_READ(kind, data, i + 5)) &&
                       PyUnicode_READ(kind, data, i + 6) == '_') {
                memcpy(o, "_x005F_", 7);
                o += 7;
            } else {
                *o++ = (unsigned char)c;
            }
        } else if ((c < 0x20 && c != '\t' && c != '\n') || (c >= 0xD800 && c <= 0xDFFF) || c == 0xFFFE ||
                   c == 0xFFFF) {
            static const char hex[] = "0123456789ABCDEF";
            o[0] = '_';
            o[1] = 'x';
            o[2] = hex[(c >> 12) & 15];
            o[3] = hex[(c >> 8) & 15];
            o[4] = hex[(c >> 4) & 15];
            o[5] = hex[c & 15];
            o[6] = '_';
            o += 7;
        } else if (c < 0x80) {
            *o++ = (unsigned char)c;
        } else if (c < 0x800) {
            *o++ = (unsigned char)(0xC0 | (c >> 6));
            *o++ = (unsigned char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            *o++ = (unsigned char)(0xE0 | (c >> 12));
            *o++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            *o++ = (unsigned char)(0x80 | (c & 0x3F));
        } else {
            *o++ = (unsigned char)(0xF0 | (c >> 18));
            *o++ = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
            *o++ = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
            *o++ = (unsigned char)(0x80 | (c & 0x3F));
        }
    }
    b->len = (char *)o - b->p;
    PUT(b, "</t></is></c>");
    return 0;
}

/* The common case, in one copy: an ASCII text that needs no escaping (the writer's fast text test). */
static int plain_ascii(buffer *b, PyObject *v, const char *start, Py_ssize_t start_len) {
    Py_ssize_t len = PyUnicode_GET_LENGTH(v);
    const unsigned char *s = PyUnicode_DATA(v);
    if (len && (s[0] == ' ' || s[len - 1] == ' '))
        return 0;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        if (c < 0x20 || c == 0x7f || c == '&' || c == '<' || c == '>' || (c == '_' && i + 1 < len && s[i + 1] == 'x'))
            return 0;
    }
    if (grow(b, start_len + len + 40) < 0)
        return -1;
    put(b, start, start_len);
    PUT(b, " t=\"inlineStr\"><is><t>");
    put(b, (const char *)s, len);
    PUT(b, "</t></is></c>");
    return 1;
}

/* A number cell: start, the column's style, the digits. */
static int number(buffer *b, const char *start, Py_ssize_t start_len, const char *style, Py_ssize_t style_len,
                  const char *digits, Py_ssize_t n) {
    if (grow(b, start_len + style_len + n + 16) < 0)
        return -1;
    put(b, start, start_len);
    put(b, style, style_len);
    PUT(b, "><v>");
    put(b, digits, n);
    PUT(b, "</v></c>");
    return 0;
}

/* The Python helpers' cell: helper(c, letter, n, v), appended as UTF-8. */
static int slow(buffer *b, PyObject *helper, const char *start, Py_ssize_t start_len, PyObject *letter, long long n,
                PyObject *v) {
    PyObject *c = PyUnicode_FromStringAndSize(start, start_len);
    PyObject *row = c ? PyLong_FromLongLong(n) : NULL;
    PyObject *cell = row ? PyObject_CallFunctionObjArgs(helper, c, letter, row, v, NULL) : NULL;
    Py_XDECREF(c);
    Py_XDECREF(row);
    if (cell == NULL)
        return -1;
    int failed = PyUnicode_Check(cell) ? put_str(b, cell) : (PyErr_SetString(PyExc_TypeError, "a cell must be str"), -1);
    Py_DECREF(cell);
    return failed;
}

typedef struct {
    const char *s;
    Py_ssize_t n;
} text_ref;

/* '<c r="B7' and then ``end`` into ``out`` (48 bytes: at most 6 + MAX_LETTERS + 20 + 3); returns the length. */
static Py_ssize_t reference(char *out, text_ref letter, long long n, const char *end) {
    char digits[24], *d = digits_of(n, digits + sizeof(digits));
    Py_ssize_t k = 0, nd = digits + sizeof(digits) - d, ne = (Py_ssize_t)strlen(end);
    memcpy(out, "<c r=\"", 6);
    k = 6;
    memcpy(out + k, letter.s, letter.n);
    k += letter.n;
    memcpy(out + k, d, nd);
    k += nd;
    memcpy(out + k, end, ne);
    return k + ne;
}

static int texts(PyObject *seq, text_ref *out, Py_ssize_t width) {
    for (Py_ssize_t j = 0; j < width; j++) {
        out[j].s = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(seq, j), &out[j].n);
        if (out[j].s == NULL)
            return -1;
    }
    return 0;
}

/* A number cell of a finite double, in repr's digits (the shortest that read back as the same double). */
static int double_cell(buffer *b, const char *start, Py_ssize_t start_len, text_ref style, double d) {
    char *r = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (r == NULL)
        return -1;
    int failed = number(b, start, start_len, style.s, style.n, r, (Py_ssize_t)strlen(r));
    PyMem_Free(r);
    return failed;
}

static int cell(buffer *b, PyObject *v, const char *start, Py_ssize_t start_len, text_ref style, text_ref date_style,
                text_ref datetime_style, PyObject *letter, long long n, PyObject *text, PyObject *other) {
    PyTypeObject *t = Py_TYPE(v);
    if (t == &PyUnicode_Type) {
        if (PyUnicode_GET_LENGTH(v) > SHORT_TEXT)
            return slow(b, text, start, start_len, letter, n, v);
        int done = PyUnicode_IS_ASCII(v) ? plain_ascii(b, v, start, start_len) : 0;
        return done != 0 ? (done < 0 ? -1 : 0) : text_cell(b, v, start, start_len);
    }
    if (t == &PyLong_Type) {
        int overflow;
        long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (!overflow) {
            if (x == -1 && PyErr_Occurred())
                return -1;
            char digits[24], *d = digits_of(x, digits + sizeof(digits));
            return number(b, start, start_len, style.s, style.n, d, digits + sizeof(digits) - d);
        }
        int low = PyObject_RichCompareBool(int_no_double_n, v, Py_LT);
        int high = low == 1 ? PyObject_RichCompareBool(v, int_no_double, Py_LT) : low;
        if (high < 0)
            return -1;
        if (!high)
            return slow(b, other, start, start_len, letter, n, v);
        PyObject *s = PyObject_Str(v);
        if (s == NULL)
            return -1;
        Py_ssize_t k;
        const char *digits = PyUnicode_AsUTF8AndSize(s, &k);
        int failed = digits == NULL ? -1 : number(b, start, start_len, style.s, style.n, digits, k);
        Py_DECREF(s);
        return failed;
    }
    if (t == &PyFloat_Type) {
        double d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d))
            return slow(b, other, start, start_len, letter, n, v);
        return double_cell(b, start, start_len, style, d);
    }
    if ((PyObject *)t == decimal_type) {
        PyObject *s = PyObject_Str(v);
        if (s == NULL)
            return -1;
        Py_ssize_t k;
        const char *digits = PyUnicode_AsUTF8AndSize(s, &k);
        int failed;
        if (digits == NULL)
            failed = -1;
        else if (k > (digits[0] == '-') && digits[digits[0] == '-'] >= '0' && digits[digits[0] == '-'] <= '9')
            failed = number(b, start, start_len, style.s, style.n, digits, k); /* finite: NaN, sNaN, Infinity are not */
        else
            failed = slow(b, other, start, start_len, letter, n, v);
        Py_DECREF(s);
        return failed;
    }
    if (t == PyDateTimeAPI->DateType) {
        long serial = ordinal(PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v)) - epoch_ordinal;
        if (serial < 61)
            serial -= 1; /* Excel's 1900-02-29 */
        if (serial < 1)
            return slow(b, other, start, start_len, letter, n, v);
        char digits[24], *d = digits_of(serial, digits + sizeof(digits));
        return number(b, start, start_len, date_style.s, date_style.n, d, digits + sizeof(digits) - d);
    }
    if (t == PyDateTimeAPI->DateTimeType) {
        int y = PyDateTime_GET_YEAR(v), m = PyDateTime_GET_MONTH(v);
        if (PyDateTime_DATE_GET_TZINFO(v) != Py_None || y < 1900 || (y == 1900 && m < 3))
            return slow(b, other, start, start_len, letter, n, v);
        long days = ordinal(y, m, PyDateTime_GET_DAY(v)) - epoch_ordinal;
        long long micro = ((long long)PyDateTime_DATE_GET_HOUR(v) * 3600 + PyDateTime_DATE_GET_MINUTE(v) * 60 +
                           PyDateTime_DATE_GET_SECOND(v)) * 1000000LL + PyDateTime_DATE_GET_MICROSECOND(v);
        /* as Python computes it: int / int (both exact in a double, so one correctly rounded division), + days */
        return double_cell(b, start, start_len, datetime_style, (double)days + (double)micro / 86400000000.0);
    }
    if (t == &PyBool_Type) {
        if (grow(b, start_len + 24) < 0)
            return -1;
        put(b, start, start_len);
        return v == Py_True ? PUT(b, " t=\"b\"><v>1</v></c>") : PUT(b, " t=\"b\"><v>0</v></c>");
    }
    return slow(b, other, start, start_len, letter, n, v);
}

static PyObject *encode(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError,
                        "encode(rows, limit, n, pieces, flush, letters, styles, date_style, datetime_style, text, other)");
        return NULL;
    }
    PyObject *rows = args[0], *letters = args[5], *styles = args[6], *text = args[9], *other = args[10];
    long long limit = PyLong_AsLongLong(args[1]), n = PyLong_AsLongLong(args[2]), pieces = PyLong_AsLongLong(args[3]);
    long long flush = PyLong_AsLongLong(args[4]);
    if (PyErr_Occurred())
        return NULL;
    if (!PyIter_Check(rows) || !PyTuple_Check(letters) || !PyTuple_Check(styles) ||
        PyTuple_GET_SIZE(letters) != PyTuple_GET_SIZE(styles)) {
        PyErr_SetString(PyExc_TypeError, "rows must be an iterator; letters and styles tuples of one length");
        return NULL;
    }
    Py_ssize_t width = PyTuple_GET_SIZE(letters);
    text_ref *letter = PyMem_Malloc(sizeof(text_ref) * 2 * (width + 1)), *style, date_style, datetime_style;
    buffer b = {NULL, 0, 0};
    if (letter == NULL)
        return PyErr_NoMemory();
    style = letter + width + 1;
    if (texts(letters, letter, width) < 0 || texts(styles, style, width) < 0)
        goto error;
    for (Py_ssize_t j = 0; j < width; j++) {
        if (letter[j].n > MAX_LETTERS) {
            PyErr_SetString(PyExc_ValueError, "a column's letters are at most 8 characters");
            goto error;
        }
    }
    date_style.s = PyUnicode_AsUTF8AndSize(args[7], &date_style.n);
    datetime_style.s = date_style.s ? PyUnicode_AsUTF8AndSize(args[8], &datetime_style.n) : NULL;
    if (datetime_style.s == NULL || grow(&b, 1 << 16) < 0)
        goto error;
    for (long long taken = 0; taken < limit; taken++) {
        PyObject *row = PyIter_Next(rows);
        if (row == NULL) {
            if (PyErr_Occurred())
                goto error;
            break;
        }
        PyObject *seq = PyTuple_CheckExact(row) ? (Py_INCREF(row), row) : PySequence_Tuple(row);
        Py_DECREF(row);
        if (seq == NULL)
            goto error;
        n++;
        Py_ssize_t len = PyTuple_GET_SIZE(seq), m = len < width ? len : width;
        char start[48] = "<c";
        Py_ssize_t start_len = 2;
        int failed = PUT(&b, "<row>");
        pieces++;
        for (Py_ssize_t j = 0; j < m && !failed; j++) {
            PyObject *v = PyTuple_GET_ITEM(seq, j);
            if (v == Py_None) {
                start_len = 0; /* the next cell carries its reference */
                continue;
            }
            if (start_len == 0)
                start_len = reference(start, letter[j], n, "\"");
            failed = cell(&b, v, start, start_len, style[j], date_style, datetime_style,
                          PyTuple_GET_ITEM(letters, j), n, text, other);
            pieces++;
            start_len = 2;
        }
        if (!failed && width && (len < width || PyTuple_GET_ITEM(seq, width - 1) == Py_None)) {
            char last[48];
            failed = put(&b, last, reference(last, letter[width - 1], n, "\"/>"));
            pieces++;
        }
        Py_DECREF(seq);
        if (failed || PUT(&b, "</row>") < 0)
            goto error;
        pieces++;
        if (pieces > flush)
            break;
    }
    PyMem_Free(letter);
    PyObject *data = PyBytes_FromStringAndSize(b.p, b.len);
    PyMem_Free(b.p);
    return data ? Py_BuildValue("(NLL)", data, n, pieces) : NULL;
error:
    PyMem_Free(letter);
    PyMem_Free(b.p);
    return NULL;
}

static PyMethodDef methods[] = {
    {"encode", (PyCFunction)(void (*)(void))encode, METH_FASTCALL,
     "encode(rows, limit, n, pieces, flush, letters, styles, date_style, datetime_style, text, other) -> "
     "(data, n, pieces)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_rows", NULL, 0, methods};

PyMODINIT_FUNC PyInit__rows(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    PyObject *decimal = PyImport_ImportModule("decimal");
    if (decimal == NULL)
        return NULL;
    decimal_type = PyObject_GetAttrString(decimal, "Decimal");
    Py_DECREF(decimal);
    PyObject *one = PyLong_FromLong(1), *e1024 = PyLong_FromLong(1024), *e970 = PyLong_FromLong(970);
    PyObject *a = one && e1024 ? PyNumber_Lshift(one, e1024) : NULL;
    PyObject *c = one && e970 ? PyNumber_Lshift(one, e970) : NULL;
    int_no_double = a && c ? PyNumber_Subtract(a, c) : NULL;
    int_no_double_n = int_no_double ? PyNumber_Negative(int_no_double) : NULL;
    Py_XDECREF(one);
    Py_XDECREF(e1024);
    Py_XDECREF(e970);
    Py_XDECREF(a);
    Py_XDECREF(c);
    if (decimal_type == NULL || int_no_double_n == NULL)
        return NULL;
    epoch_ordinal = ordinal(1899, 12, 30);
    return PyModule_Create(&module);
}
