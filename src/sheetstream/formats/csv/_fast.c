/* CSV's hot loops in C: rows -> CSV bytes (the export), CSV bytes -> records (the import).
 *
 * write(rows, delimiter, neutralise, fallback, max_rows, chunk_bytes) -> bytes
 *
 *   The CSV bytes (UTF-8) of up to ``max_rows`` rows taken from the iterator ``rows``, stopping after the row that
 *   takes the output to ``chunk_bytes``; b"" when the iterator is exhausted. Exactly what writer.py writes (the
 *   stdlib writer's QUOTE_MINIMAL quoting, the text forms of its table, NUL as U+FFFD, U+FEFF as U+2060, a lone
 *   surrogate as U+FFFD): the types whose form is written here are the exact types None, str, bool, int, float,
 *   Decimal (its str() when that has no exponent), date, and datetime and time without a time zone. Any other
 *   value goes to ``fallback(value)`` (writer._value_function), whose answer (None, str, int, float; anything else
 *   is str()-ed, as the stdlib writer does) is written as it is. tests/formats/csv/test_fast.py compares the two.
 *
 * Reader(delimiter, max_fields, max_record_bytes).feed(chunk, final) -> list | None
 *
 *   The records completed by ``chunk`` (the next bytes of the file as UTF-8; the whole rest with ``final``), as
 *   (number, values) with the numbering and values of reader.CsvBook.rows(): the first record is 1, a quoted line
 *   break does not start a record, an empty field is None, a record of empty fields is skipped (and keeps its
 *   number), a ' that the writer put before a formula-like text is taken off. It reads only what the Python
 *   reader reads without a problem: anything else (a NUL byte, a byte order mark, bytes that are not UTF-8, a
 *   quote out of place, a quote never closed, a record over ``max_record_bytes`` or ``max_fields``) returns None,
 *   and from then on the Python reader reads the file (it re-reads it and skips the records given here), and says
 *   what is wrong at which line. So this file holds no error message and no rule that reader.py does not hold;
 *   the memory it holds is the record in progress (at most max_record_bytes) and one chunk's records.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

static PyObject *DecimalType;

/* ------------------------------------------------------------------------------------------------ the writer */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int reserve(Buf *b, Py_ssize_t more) {
    if (b->len + more <= b->cap) return 0;
    Py_ssize_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + more) cap *= 2;
    char *data = PyMem_Realloc(b->data, cap);
    if (!data) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline void put(Buf *b, const char *s, Py_ssize_t n) {
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

/* A text as a field: quoted when it holds the delimiter, a quote, CR or LF (quotes doubled), encoded as UTF-8
 * with NUL -> U+FFFD, U+FEFF -> U+2060 and lone surrogates -> U+FFFD; with ``mark``, a ' before it. */
static int put_text(Buf *b, PyObject *text, Py_UCS4 delimiter, int mark) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    int quote = 0, plain = PyUnicode_IS_ASCII(text);
    if (kind == PyUnicode_1BYTE_KIND) { /* the common case, in a loop of its own: 3x the generic one */
        const Py_UCS1 *u = data;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS1 c = u[i];
            if (c <= '"' || c == delimiter) {
                if (c == delimiter || c == '"' || c == '\r' || c == '\n') {
                    quote = 1;
                    break;
                }
                if (c == 0) plain = 0;
            }
        }
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c == delimiter || c == '"' || c == '\r' || c == '\n') {
                quote = 1;
                break;
            }
            if (c == 0) plain = 0;
        }
    }
    if (reserve(b, 4 * n + n + 3) < 0) return -1; /* 4 bytes a character at most, a quote doubled: 2 */
    if (quote) b->data[b->len++] = '"';
    if (mark) b->data[b->len++] = '\'';
    if (plain && !quote) {
        put(b, (const char *)data, n);
    } else {
        char *o = b->data + b->len;
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c < 0x80) {
                if (c == '"') *o++ = '"';
                if (c == 0) {
                    *o++ = (char)0xEF; *o++ = (char)0xBF; *o++ = (char)0xBD;
                } else {
                    *o++ = (char)c;
                }
            } else if (c < 0x800) {
                *o++ = (char)(0xC0 | (c >> 6)); *o++ = (char)(0x80 | (c & 0x3F));
            } else if (c >= 0xD800 && c <= 0xDFFF) {
                *o++ = (char)0xEF; *o++ = (char)0xBF; *o++ = (char)0xBD;
            } else if (c < 0x10000) {
                if (c == 0xFEFF) c = 0x2060;
                *o++ = (char)(0xE0 | (c >> 12)); *o++ = (char)(0x80 | ((c >> 6) & 0x3F));
                *o++ = (char)(0x80 | (c & 0x3F));
            } else {
                *o++ = (char)(0xF0 | (c >> 18)); *o++ = (char)(0x80 | ((c >> 12) & 0x3F));
                *o++ = (char)(0x80 | ((c >> 6) & 0x3F)); *o++ = (char)(0x80 | (c & 0x3F));
            }
        }
        b->len = o - b->data;
    }
    if (quote) b->data[b->len++] = '"';
    return 0;
}

static int is_trigger(Py_UCS4 c) { return c == '=' || c == '+' || c == '-' || c == '@' || c == '\t' || c == '\r'; }

/* injection.neutralise: a ' before a text that, its leading 's removed, begins with a trigger. */
static int needs_mark(PyObject *text) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    while (i < n && PyUnicode_READ(kind, data, i) == '\'') i++;
    return i < n && is_trigger(PyUnicode_READ(kind, data, i));
}

static int put_ascii(Buf *b, const char *s, Py_ssize_t n) {
    if (reserve(b, n) < 0) return -1;
    put(b, s, n);
    return 0;
}

/* A str() of anything, as the stdlib writer writes it (text quoted where needed, never marked). */
static int put_str_of(Buf *b, PyObject *value, Py_UCS4 delimiter) {
    PyObject *text = PyObject_Str(value);
    if (!text) return -1;
    int r = put_text(b, text, delimiter, 0);
    Py_DECREF(text);
    return r;
}

/* n's decimal digits at o, right to left from o + width - 1 (width >= digits of n, zero-padded) */
static inline void digits(char *o, unsigned long long n, int width) {
    for (int i = width - 1; i >= 0; i--) {
        o[i] = (char)('0' + n % 10);
        n /= 10;
    }
}

static inline int width_of(unsigned long long n) {
    int w = 1;
    while (n >= 10) {
        n /= 10;
        w++;
    }
    return w;
}

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

/* repr() of a float with at most 15 significant digits between 1e-4 and 1e15 (where repr writes no exponent):
 * the fewest decimals k for which the k-decimal number reads back as the same float (a division of two exact
 * doubles, correctly rounded: what parsing the text gives) is the shortest text, and with 15 digits or fewer it is
 * the only one, so it is repr's. 10x faster than PyOS_double_to_string; any other float takes that. Returns 0
 * when written, 1 when the float is not one of these. */
static int put_short_float(Buf *b, double x) {
    double a = x < 0 ? -x : x;
    if (!(a >= 1e-4 && a < 1e15)) return 1;
    for (int k = 0; k <= 15; k++) {
        double m = a * POW10[k];
        if (m >= 1e15) return 1;
        double n = nearbyint(m);
        if (n / POW10[k] != a) continue;
        unsigned long long v = (unsigned long long)n;
        int w = width_of(v), whole = w > k ? w - k : 1, total = whole + 1 + (k ? k : 1) + (x < 0);
        if (reserve(b, total) < 0) return -1;
        char *o = b->data + b->len;
        if (x < 0) *o++ = '-';
        digits(o, v / (unsigned long long)POW10[k], whole);
        o += whole;
        *o++ = '.';
        if (k) {
            digits(o, v % (unsigned long long)POW10[k], k);
        } else {
            *o = '0';
        }
        b->len += total;
        return 0;
    }
    return 1;
}

static int put_float(Buf *b, PyObject *value) {
    double x = PyFloat_AS_DOUBLE(value);
    int r = put_short_float(b, x);
    if (r <= 0) return r;
    char *s = PyOS_double_to_string(x, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!s) return -1;
    r = put_ascii(b, s, (Py_ssize_t)strlen(s));
    PyMem_Free(s);
    return r;
}

static int put_int(Buf *b, PyObject *value, Py_UCS4 delimiter) {
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow) return put_str_of(b, value, delimiter);
    if (v == -1 && PyErr_Occurred()) return -1;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    int w = width_of(u);
    if (reserve(b, w + 1) < 0) return -1;
    if (v < 0) b->data[b->len++] = '-';
    digits(b->data + b->len, u, w);
    b->len += w;
    return 0;
}

/* YYYY-MM-DD, with a spare byte reserved after it (a datetime's space); then HH:MM:SS[.ffffff] */
static int put_date(Buf *b, int y, int mo, int d) {
    if (reserve(b, 11) < 0) return -1;
    char *o = b->data + b->len;
    digits(o, y, 4);
    o[4] = '-';
    digits(o + 5, mo, 2);
    o[7] = '-';
    digits(o + 8, d, 2);
    b->len += 10;
    return 0;
}

static int put_clock(Buf *b, int h, int mi, int sec, int us) {
    if (reserve(b, 15) < 0) return -1;
    char *o = b->data + b->len;
    digits(o, h, 2);
    o[2] = ':';
    digits(o + 3, mi, 2);
    o[5] = ':';
    digits(o + 6, sec, 2);
    b->len += 8;
    if (us) {
        o[8] = '.';
        digits(o + 9, us, 6);
        b->len += 7;
    }
    return 0;
}

/* What the fallback answered (writer._text): None, a finished text, a number; else its str(). */
static int put_answer(Buf *b, PyObject *answer, Py_UCS4 delimiter) {
    if (answer == Py_None) return 0;
    if (PyUnicode_CheckExact(answer)) return put_text(b, answer, delimiter, 0);
    if (PyLong_CheckExact(answer)) return put_int(b, answer, delimiter);
    if (PyFloat_CheckExact(answer)) return put_float(b, answer);
    return put_str_of(b, answer, delimiter);
}

static int put_value(Buf *b, PyObject *v, Py_UCS4 delimiter, int neutralise, PyObject *fallback) {
    if (v == Py_None) return 0;
    if (PyUnicode_CheckExact(v)) {
        int mark = 0;
        if (neutralise && PyUnicode_GET_LENGTH(v)) {
            Py_UCS4 c = PyUnicode_READ_CHAR(v, 0);
            mark = (c == '\'' || is_trigger(c)) && needs_mark(v);
        }
        return put_text(b, v, delimiter, mark);
    }
    if (v == Py_True) return put_ascii(b, "true", 4);
    if (v == Py_False) return put_ascii(b, "false", 5);
    if (PyLong_CheckExact(v)) return put_int(b, v, delimiter);
    if (PyFloat_CheckExact(v)) return put_float(b, v);
    if (Py_IS_TYPE(v, (PyTypeObject *)DecimalType)) {
        /* str() is exact and without exponent for all but very large or small exponents (writer._compile) */
        PyObject *text = PyObject_Str(v);
        if (!text) return -1;
        if (PyUnicode_FindChar(text, 'E', 0, PyUnicode_GET_LENGTH(text), 1) < 0) {
            int r = put_text(b, text, delimiter, 0);
            Py_DECREF(text);
            return r;
        }
        Py_DECREF(text);
    } else if (PyDateTime_CheckExact(v)) {
        if (!((PyDateTime_DateTime *)v)->hastzinfo || PyDateTime_DATE_GET_TZINFO(v) == Py_None) {
            if (put_date(b, PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v)) < 0) return -1;
            b->data[b->len++] = ' '; /* put_date reserved it */
            return put_clock(b, PyDateTime_DATE_GET_HOUR(v), PyDateTime_DATE_GET_MINUTE(v),
                             PyDateTime_DATE_GET_SECOND(v), PyDateTime_DATE_GET_MICROSECOND(v));
        }
        return put_str_of(b, v, delimiter);
    } else if (PyDate_CheckExact(v)) {
        return put_date(b, PyDateTime_GET_YEAR(v), PyDateTime_GET_MONTH(v), PyDateTime_GET_DAY(v));
    } else if (PyTime_CheckExact(v)) {
        if (!((PyDateTime_Time *)v)->hastzinfo || PyDateTime_TIME_GET_TZINFO(v) == Py_None)
            return put_clock(b, PyDateTime_TIME_GET_HOUR(v), PyDateTime_TIME_GET_MINUTE(v),
                             PyDateTime_TIME_GET_SECOND(v), PyDateTime_TIME_GET_MICROSECOND(v));
        return put_str_of(b, v, delimiter);
    }
    PyObject *answer = PyObject_CallOneArg(fallback, v);
    if (!answer) return -1;
    int r = put_answer(b, answer, delimiter);
    Py_DECREF(answer);
    return r;
}

static PyObject *csv_write(PyObject *self, PyObject *args) {
    PyObject *rows, *fallback, *delim;
    int neutralise;
    Py_ssize_t max_rows, chunk_bytes;
    if (!PyArg_ParseTuple(args, "OUpOnn", &rows, &delim, &neutralise, &fallback, &max_rows, &chunk_bytes))
        return NULL;
    if (PyUnicode_GET_LENGTH(delim) != 1) {
        PyErr_SetString(PyExc_ValueError, "the delimiter is one character");
        return NULL;
    }
    Py_UCS4 delimiter = PyUnicode_READ_CHAR(delim, 0);
    if (delimiter >= 0x80) {
        PyErr_SetString(PyExc_ValueError, "the delimiter is an ASCII character");
        return NULL;
    }
    Buf b = {NULL, 0, 0};
    if (reserve(&b, chunk_bytes + 1024) < 0) return NULL;
    for (Py_ssize_t count = 0; count < max_rows && b.len < chunk_bytes; count++) {
        PyObject *row = PyIter_Next(rows);
        if (!row) {
            if (PyErr_Occurred()) goto fail;
            break;
        }
        PyObject *fast = PySequence_Fast(row, "a row is a sequence of values");
        Py_DECREF(row);
        if (!fast) goto fail;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
        PyObject **values = PySequence_Fast_ITEMS(fast);
        Py_ssize_t begin = b.len;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (i) {
                if (reserve(&b, 4) < 0) goto fail_row;
                /* the delimiter is , ; or tab (writer.DELIMITERS) */
                b.data[b.len++] = (char)delimiter;
            }
            if (put_value(&b, values[i], delimiter, neutralise, fallback) < 0) goto fail_row;
        }
        Py_DECREF(fast);
        if (reserve(&b, 4) < 0) goto fail;
        if (n == 1 && b.len == begin) put(&b, "\"\"", 2); /* the stdlib's form of a row of one empty field */
        put(&b, "\r\n", 2);
        continue;
    fail_row:
        Py_DECREF(fast);
        goto fail;
    }
    PyObject *out = PyBytes_FromStringAndSize(b.data, b.len);
    PyMem_Free(b.data);
    return out;
fail:
    PyMem_Free(b.data);
    return NULL;
}

/* ------------------------------------------------------------------------------------------------ the reader */

typedef struct {
    PyObject_HEAD
    char delimiter;
    Py_ssize_t max_fields, max_bytes;
    Py_ssize_t number; /* records completed so far (the empty ones too) */
    char *pending;     /* the bytes not yet read into records: the record in progress */
    Py_ssize_t len, cap;
    char *field;       /* a quoted field's text, its quotes undoubled */
    Py_ssize_t field_cap;
    Py_ssize_t *starts; /* a record's fields: [start, end) in ``pending`` or, when quoted, in ``field`` */
    Py_ssize_t *ends;
    char *quoted;
    Py_ssize_t slots;
} Reader;

#define INCOMPLETE 1
#define PUNT 2

static int grow_fields(Reader *r) {
    Py_ssize_t slots = r->slots ? r->slots * 2 : 64;
    Py_ssize_t *starts = PyMem_Realloc(r->starts, slots * sizeof *starts);
    if (!starts) return -1;
    r->starts = starts;
    Py_ssize_t *ends = PyMem_Realloc(r->ends, slots * sizeof *ends);
    if (!ends) return -1;
    r->ends = ends;
    char *quoted = PyMem_Realloc(r->quoted, slots);
    if (!quoted) return -1;
    r->quoted = quoted;
    r->slots = slots;
    return 0;
}

/* One record from p: its fields' bounds; returns 0 (``*next`` past its line end), INCOMPLETE, PUNT or -1. */
static int scan_record(Reader *r, const char *p, const char *end, int final, Py_ssize_t *count,
                       const char **next) {
    const char *base = r->pending;
    char d = r->delimiter;
    Py_ssize_t n = 0, used = 0; /* fields, bytes of ``field`` used */
    if (p == end) return INCOMPLETE;
    if (*p == '\r' || *p == '\n') { /* an empty line: a record of no fields */
        if (*p == '\r') {
            if (p + 1 == end && !final) return INCOMPLETE;
            p += (p + 1 < end && p[1] == '\n') ? 2 : 1;
        } else {
            p++;
        }
        *count = 0;
        *next = p;
        return 0;
    }
    for (;;) {
        if (n == r->max_fields + 1) return PUNT; /* over the bound: reader.py says so */
        if (n == r->slots && grow_fields(r) < 0) return -1;
        if (p < end && *p == '"') {
            p++;
            Py_ssize_t begin = used;
            for (;;) {
                const char *q = memchr(p, '"', end - p);
                if (!q) {
                    if (final) return PUNT; /* never closed */
                    return INCOMPLETE;
                }
                Py_ssize_t piece = q - p;
                if (used + piece + 1 > r->field_cap) {
                    Py_ssize_t cap = r->field_cap ? r->field_cap : 4096;
                    while (cap < used + piece + 1) cap *= 2;
                    char *field = PyMem_Realloc(r->field, cap);
                    if (!field) return -1;
                    r->field = field;
                    r->field_cap = cap;
                }
                memcpy(r->field + used, p, piece);
                used += piece;
                p = q + 1;
                if (p == end) {
                    if (!final) return INCOMPLETE;
                    break;
                }
                if (*p == '"') { /* a doubled quote */
                    r->field[used++] = '"';
                    p++;
                    continue;
                }
                if (*p != d && *p != '\r' && *p != '\n') return PUNT; /* strict: text after the closing quote */
                break;
            }
            r->starts[n] = begin;
            r->ends[n] = used;
            r->quoted[n] = 1;
        } else {
            const char *f = p;
            while (p < end && *p != d && *p != '\r' && *p != '\n') p++;
            if (p == end && !final) return INCOMPLETE;
            r->starts[n] = f - base;
            r->ends[n] = p - base;
            r->quoted[n] = 0;
        }
        n++;
        if (p == end) break; /* the last line, without a line end */
        if (*p == d) {
            p++;
            if (p == end && !final) return INCOMPLETE;
            continue;
        }
        if (*p == '\r') {
            if (p + 1 == end && !final) return INCOMPLETE;
            p += (p + 1 < end && p[1] == '\n') ? 2 : 1;
        } else {
            p++;
        }
        break;
    }
    if (n > r->max_fields) return PUNT;
    *count = n;
    *next = p;
    return 0;
}

/* A field's value: None when empty, else its text with a neutralising ' taken off (injection.restore). */
static PyObject *field_value(const char *s, Py_ssize_t n) {
    if (!n) Py_RETURN_NONE;
    if (s[0] == '\'') {
        Py_ssize_t i = 0;
        while (i < n && s[i] == '\'') i++;
        if (i < n && is_trigger((unsigned char)s[i])) {
            s++;
            n--;
        }
    }
    return PyUnicode_DecodeUTF8(s, n, NULL);
}

static void reader_dealloc(Reader *r) {
    PyMem_Free(r->pending);
    PyMem_Free(r->field);
    PyMem_Free(r->starts);
    PyMem_Free(r->ends);
    PyMem_Free(r->quoted);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static int reader_init(Reader *r, PyObject *args, PyObject *kwargs) {
    int delimiter;
    if (!PyArg_ParseTuple(args, "Cnn", &delimiter, &r->max_fields, &r->max_bytes)) return -1;
    if (delimiter >= 0x80 || delimiter == '"' || delimiter == '\r' || delimiter == '\n' || delimiter == 0) {
        PyErr_SetString(PyExc_ValueError, "the delimiter is an ASCII character other than a quote or a line end");
        return -1;
    }
    r->delimiter = (char)delimiter;
    return 0;
}

static PyObject *reader_feed(Reader *r, PyObject *args) {
    Py_buffer chunk;
    int final;
    if (!PyArg_ParseTuple(args, "y*p", &chunk, &final)) return NULL;
    Py_ssize_t old = r->len, given = r->number;
    if (r->len + chunk.len > r->cap) {
        Py_ssize_t cap = r->cap ? r->cap : 1 << 17;
        while (cap < r->len + chunk.len) cap *= 2;
        char *pending = PyMem_Realloc(r->pending, cap);
        if (!pending) {
            PyBuffer_Release(&chunk);
            return PyErr_NoMemory();
        }
        r->pending = pending;
        r->cap = cap;
    }
    memcpy(r->pending + r->len, chunk.buf, chunk.len);
    r->len += chunk.len;
    PyBuffer_Release(&chunk);
    /* A NUL byte or a byte order mark anywhere (the mark's bytes may straddle two chunks): reader.py refuses it. */
    Py_ssize_t from = old > 2 ? old - 2 : 0;
    if (memchr(r->pending + from, 0, r->len - from)) Py_RETURN_NONE;
    for (const char *q = r->pending + from, *e = r->pending + r->len;
         (q = memchr(q, 0xEF, e - q)) != NULL && e - q >= 3; q++)
        if ((unsigned char)q[1] == 0xBB && (unsigned char)q[2] == 0xBF) Py_RETURN_NONE;

    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    const char *p = r->pending, *end = r->pending + r->len;
    for (;;) {
        Py_ssize_t count;
        const char *next;
        int state = scan_record(r, p, end, final, &count, &next);
        if (state < 0) goto fail;
        if (state == PUNT) goto punt;
        if (state == INCOMPLETE) {
            if (end - p > r->max_bytes) goto punt; /* the record in progress is already too long */
            break;
        }
        if (next - p > r->max_bytes) goto punt;
        r->number++;
        int any = 0;
        for (Py_ssize_t i = 0; i < count; i++)
            if (r->ends[i] > r->starts[i]) any = 1;
        if (any) {
            PyObject *values = PyList_New(count);
            if (!values) goto fail;
            for (Py_ssize_t i = 0; i < count; i++) {
                const char *s = (r->quoted[i] ? r->field : r->pending) + r->starts[i];
                PyObject *v = field_value(s, r->ends[i] - r->starts[i]);
                if (!v) {
                    Py_DECREF(values);
                    if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) goto fail;
                    PyErr_Clear();
                    goto punt; /* not UTF-8: an Unreadable value, read by reader.py */
                }
                PyList_SET_ITEM(values, i, v);
            }
            PyObject *number = PyLong_FromSsize_t(r->number);
            if (!number) {
                Py_DECREF(values);
                goto fail;
            }
            PyObject *record = PyTuple_Pack(2, number, values);
            Py_DECREF(number);
            Py_DECREF(values);
            if (!record || PyList_Append(out, record) < 0) {
                Py_XDECREF(record);
                goto fail;
            }
            Py_DECREF(record);
        }
        p = next;
    }
    r->len = end - p;
    memmove(r->pending, p, r->len);
    return out;
punt: /* none of this chunk's records is given: the Python loop gives them */
    r->number = given;
    Py_DECREF(out);
    Py_RETURN_NONE;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *reader_number(Reader *r, void *closure) { return PyLong_FromSsize_t(r->number); }

static PyMethodDef reader_methods[] = {
    {"feed", (PyCFunction)reader_feed, METH_VARARGS, "feed(chunk, final) -> [(number, values)] | None"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef reader_getset[] = {
    {"number", (getter)reader_number, NULL, "records completed so far, the skipped empty ones included", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sheetstream.formats.csv._fast.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)reader_init,
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_methods = reader_methods,
    .tp_getset = reader_getset,
};

static PyMethodDef methods[] = {
    {"write", csv_write, METH_VARARGS, "write(rows, delimiter, neutralise, fallback, max_rows, chunk_bytes) -> bytes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fast", NULL, -1, methods};

PyMODINIT_FUNC PyInit__fast(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) return NULL;
    PyObject *decimal = PyImport_ImportModule("decimal");
    if (!decimal) return NULL;
    DecimalType = PyObject_GetAttrString(decimal, "Decimal");
    Py_DECREF(decimal);
    if (!DecimalType) return NULL;
    if (PyType_Ready(&ReaderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(m, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(&ReaderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
