/* The import's hot loops in C: a block of worksheet rows -> each row's values indexed by column, and a block of
 * the shared strings table -> its texts.
 *
 * rows(block, previous, book, row_values) -> (rows, last, rest): a block's rows (below, beside the function).
 *
 * scan(piece, start, book) -> list | None
 *
 *   piece  the row's XML (bytes), its cells starting at ``start`` (just past the row head)
 *   book   what the workbook tells about its cells (reader._scan_context), a tuple:
 *          strings    the shared strings table (reader.SharedStrings) as (data, ends), two memoryviews: the
 *                     UTF-8 of every text in one buffer, and the offset where each ends (unsigned 32-bit);
 *                     then a cache of the table's first short texts, as read (a list, a slot for each of the
 *                     first texts), and the index of the text in each slot (int64, -1 for none yet)
 *          styles     one byte per style index: 0 a plain number, 1 a date, 2 a time of day or a duration
 *          epoch      the ordinal of day 0 (datetime.toordinal)
 *          date1904   whether serials count from 1904 (else 1900, with Excel's phantom 1900-02-29)
 *          date_cell  date_cell(raw, style) -> the value of a number in a date style that is not read here
 *          decode     decode(raw) -> the text of XML text that is not read here (escapes, references, long)
 *
 * It reads only the cells that programs write in the usual way (the ones reader._CELL's fast groups take) and
 * gives exactly the values the Python loop (reader._row_values) gives. Anything else (formulas, rich text,
 * character references, single quotes, a value it cannot convert, a cell past column XFD, ...) returns None:
 * the row is then read by that Python loop, which knows every form and says what is wrong at which cell. So this
 * file holds no error message and no rule that the Python loop does not hold too; tests/formats/xlsx/test_cells.py
 * compares the two on generated rows.
 *
 * shared(block, decode) -> list | None
 *
 *   block   a block of the shared strings part (reader._blocks: whole <si> elements)
 *   decode  as above
 *
 * The block's strings in order, as reader._SI finds them: a str for each plain <si><t>...</t></si> (the forms Excel
 * and most libraries write), the raw content (bytes) of any other <si> for the Python code to read (rich text,
 * phonetic runs, a text it refuses); None where the block holds something read differently by the regular
 * expression (a stray <si, an element that does not end), which then reads the whole block.
 *
 * Every read is checked against the end of its buffer; a row's list grows to at most 16,384 slots.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_COLUMNS 16384
#define MAX_ROWS 1048576
#define MAX_TEXT 32767 /* bytes of text read here; longer texts take the Python loop (it counts characters) */

enum kind { K_NONE, K_N, K_S, K_B, K_STR, K_INLINE, K_OTHER };

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int starts(const char *p, const char *end, const char *lit, Py_ssize_t n) {
    return end - p >= n && memcmp(p, lit, n) == 0;
}

static int is_word(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static const char *find(const char *p, const char *end, const char *lit, Py_ssize_t n) {
    while (end - p >= n) {
        const char *lt = memchr(p, lit[0], end - p - n + 1);
        if (lt == NULL)
            return NULL;
        if (memcmp(lt, lit, n) == 0)
            return lt;
        p = lt + 1;
    }
    return NULL;
}

/* XML text -> str: UTF-8 with the five named entities; NULL (no exception) where the Python loop must decide. */
static PyObject *text_of(const char *p, Py_ssize_t n) {
    if (n > MAX_TEXT)
        return NULL;
    for (Py_ssize_t i = 0; i + 1 < n; i++)
        if (p[i] == '_' && p[i + 1] == 'x') /* an escaped character (_x000D_): the Python loop unescapes */
            return NULL;
    const char *amp = memchr(p, '&', n);
    PyObject *s;
    if (amp == NULL) {
        s = PyUnicode_DecodeUTF8(p, n, NULL);
    } else {
        char *buf = PyMem_Malloc(n);
        Py_ssize_t out = 0, i = 0;
        if (buf == NULL)
            return NULL;
        while (i < n) {
            if (p[i] != '&') {
                buf[out++] = p[i++];
                continue;
            }
            const char *q = p + i + 1, *e = p + n;
            if (starts(q, e, "amp;", 4)) buf[out++] = '&', i += 5;
            else if (starts(q, e, "lt;", 3)) buf[out++] = '<', i += 4;
            else if (starts(q, e, "gt;", 3)) buf[out++] = '>', i += 4;
            else if (starts(q, e, "quot;", 5)) buf[out++] = '"', i += 6;
            else if (starts(q, e, "apos;", 5)) buf[out++] = '\'', i += 6;
            else {
                PyMem_Free(buf);
                return NULL; /* a character reference, or a stray "&" */
            }
        }
        s = PyUnicode_DecodeUTF8(buf, out, NULL);
        PyMem_Free(buf);
    }
    if (s == NULL)
        PyErr_Clear();
    return s;
}

/* XML text -> str, by text_of or else by the reader's own decode(); NULL (no exception) where it refuses the text
 * (the Python loop then says why, at the cell), NULL with an exception on a failure of its own. */
static PyObject *text_or_decode(const char *p, Py_ssize_t n, PyObject *decode) {
    PyObject *s = text_of(p, n);
    if (s != NULL || PyErr_Occurred())
        return s;
    PyObject *raw = PyBytes_FromStringAndSize(p, n);
    if (raw == NULL)
        return NULL;
    s = PyObject_CallOneArg(decode, raw);
    Py_DECREF(raw);
    if (s == NULL && PyErr_ExceptionMatches(PyExc_ValueError))
        PyErr_Clear();
    return s;
}

/* The text of a <t> without xml:space="preserve", as reader._decode(raw, trim=True) reads it: XML whitespace
 * trimmed from both edges (before any _xHHHH_ escape is undone). Trimming the bytes first is the same, unless a
 * character reference (which may be whitespace to trim) is there: then NULL (no exception), for the Python code. */
static PyObject *trimmed_text_or_decode(const char *p, Py_ssize_t n, PyObject *decode) {
    const char *a = p, *b = p + n;
    while (a < b && is_space(*a))
        a++;
    while (b > a && is_space(b[-1]))
        b--;
    if (find(a, b, "&#", 2) != NULL)
        return NULL;
    return text_or_decode(a, b - a, decode);
}

/* A number's text as a double, where it is one float() reads the same way; 0 where it is not. */
static int double_of(const char *p, Py_ssize_t n, double *out) {
    char buf[64];
    if (n == 0 || n >= (Py_ssize_t)sizeof buf)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
            return 0; /* inf, nan, spaces, underscores: float() of the bytes decides, in Python */
        buf[i] = c;
    }
    buf[n] = '\0';
    char *stop;
    *out = PyOS_string_to_double(buf, &stop, NULL);
    if (stop != buf + n || (*out == -1.0 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* Days since 1970-01-01 -> year, month, day (the proleptic Gregorian calendar, as datetime's). */
static void civil(long long z, int *y, int *m, int *d) {
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* cells.serial_to_datetime: the epoch + the serial in days, rounded to the millisecond (half to even, as
 * round()); NULL (no exception) outside years 1 to 9999, where the Python loop says what is wrong. */
static PyObject *datetime_of(double serial, long long epoch, int date1904) {
    if (!date1904 && serial < 60)
        serial += 1; /* Excel's phantom 1900-02-29: serials below 60 are one day off */
    double ms = nearbyint(serial * 86400000.0);
    if (!(ms > -1e15 && ms < 1e15))
        return NULL;
    long long whole = (long long)ms;
    long long day = whole >= 0 ? whole / 86400000 : -((-whole + 86399999) / 86400000);
    long long rest = whole - day * 86400000;
    long long ordinal = epoch + day;
    if (ordinal < 1 || ordinal > 3652059) /* 0001-01-01 .. 9999-12-31 */
        return NULL;
    int y, m, d;
    civil(ordinal - 719163, &y, &m, &d); /* 719163: the ordinal of 1970-01-01 */
    return PyDateTime_FromDateAndTime(y, m, d, (int)(rest / 3600000), (int)(rest / 60000 % 60),
                                      (int)(rest / 1000 % 60), (int)(rest % 1000 * 1000));
}

/* A number's text as int or float, as int(v) if v.isdigit() else float(v) gives it; NULL (no exception) else. */
static PyObject *number_of(const char *p, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    if (i == n && n > 0 && n <= 18) {
        long long x = 0;
        for (i = 0; i < n; i++)
            x = x * 10 + (p[i] - '0');
        return PyLong_FromLongLong(x);
    }
    if (i == n && n > 0)
        return NULL; /* a long run of digits: int() there has its own limits */
    double d;
    if (!double_of(p, n, &d))
        return NULL;
    return PyFloat_FromDouble(d);
}

struct book {
    const char *data;        /* the shared strings' UTF-8 */
    const uint32_t *ends;    /* where each ends in data */
    Py_ssize_t n_strings;
    PyObject *cache;         /* list: the first texts of the table, as read (short ones only) */
    int64_t *cached;         /* the index of the text in each slot, -1 for none */
    Py_ssize_t n_cache;
    PyObject *date_cell, *decode;
    const unsigned char *styles;
    Py_ssize_t n_styles;
    long long epoch;
    int date1904;
};

/* The book tuple (reader._scan_context) -> struct book; -1 with TypeError when it is not one. */
static int book_of(PyObject *tuple, struct book *book) {
    PyObject *strings = PyTuple_Check(tuple) && PyTuple_GET_SIZE(tuple) == 6 ? PyTuple_GET_ITEM(tuple, 0) : NULL;
    if (strings == NULL || !PyTuple_Check(strings) || PyTuple_GET_SIZE(strings) != 4 ||
        !PyMemoryView_Check(PyTuple_GET_ITEM(strings, 0)) || !PyMemoryView_Check(PyTuple_GET_ITEM(strings, 1)) ||
        !PyList_Check(PyTuple_GET_ITEM(strings, 2)) || !PyMemoryView_Check(PyTuple_GET_ITEM(strings, 3)) ||
        !PyBytes_Check(PyTuple_GET_ITEM(tuple, 1)) || !PyLong_Check(PyTuple_GET_ITEM(tuple, 2))) {
        PyErr_SetString(PyExc_TypeError, "book = ((data, ends, cache: list, cached), styles: bytes, epoch: int, "
                                         "date1904: bool, date_cell, decode)");
        return -1;
    }
    Py_buffer *data = PyMemoryView_GET_BUFFER(PyTuple_GET_ITEM(strings, 0));
    Py_buffer *ends = PyMemoryView_GET_BUFFER(PyTuple_GET_ITEM(strings, 1));
    Py_buffer *cached = PyMemoryView_GET_BUFFER(PyTuple_GET_ITEM(strings, 3));
    book->cache = PyTuple_GET_ITEM(strings, 2);
    book->n_cache = PyList_GET_SIZE(book->cache);
    if (ends->itemsize != 4 || cached->itemsize != 8 || cached->readonly || cached->len / 8 != book->n_cache ||
        !PyBuffer_IsContiguous(data, 'C') ||
        !PyBuffer_IsContiguous(ends, 'C') || !PyBuffer_IsContiguous(cached, 'C')) {
        PyErr_SetString(PyExc_TypeError, "shared strings = (data, uint32 ends, cache: list, int64 index of each "
                                         "of its slots)");
        return -1;
    }
    book->cached = cached->buf;
    book->data = data->buf;
    book->ends = ends->buf;
    book->n_strings = ends->len / 4;
    if (book->n_strings > 0 && book->ends[book->n_strings - 1] > (uint64_t)data->len) {
        PyErr_SetString(PyExc_ValueError, "the shared strings' ends point past their data");
        return -1;
    }
    book->styles = (const unsigned char *)PyBytes_AS_STRING(PyTuple_GET_ITEM(tuple, 1));
    book->n_styles = PyBytes_GET_SIZE(PyTuple_GET_ITEM(tuple, 1));
    book->epoch = PyLong_AsLongLong(PyTuple_GET_ITEM(tuple, 2));
    book->date1904 = PyObject_IsTrue(PyTuple_GET_ITEM(tuple, 3));
    book->date_cell = PyTuple_GET_ITEM(tuple, 4);
    book->decode = PyTuple_GET_ITEM(tuple, 5);
    if ((book->epoch == -1 || book->date1904 < 0) && PyErr_Occurred())
        return -1;
    return 0;
}

/* The cells in [p, end) -> the row's values by column; Py_None where the Python loop must read the row;
 * NULL on a failure of its own. */
static PyObject *cells(const char *p, const char *end, const struct book *book) {
    PyObject *date_cell = book->date_cell, *decode = book->decode;
    const unsigned char *styles = book->styles;
    Py_ssize_t n_styles = book->n_styles;
    long long epoch = book->epoch;
    int date1904 = book->date1904;
    PyObject *values = PyList_New(0);
    if (values == NULL)
        return NULL;
    long col = -1;
    for (;;) {
        while (p < end && is_space(*p))
            p++;
        if (p == end)
            return values;
        if (!starts(p, end, "<c", 2) || end - p < 3 || !(is_space(p[2]) || p[2] == '>' || p[2] == '/'))
            goto python;
        p += 2;
        /* Attributes: r, s and t in any order, each once, double-quoted, after a space; others are skipped. */
        long ref = -1, style = -1;
        enum kind kind = K_NONE;
        int seen_r = 0, seen_s = 0, seen_t = 0, closed = 0;
        for (;;) {
            if (p == end)
                goto python;
            if (*p == '>') {
                p++;
                break;
            }
            if (*p == '/') {
                if (!starts(p, end, "/>", 2))
                    goto python;
                p += 2;
                closed = 1;
                break;
            }
            if (!is_space(*p))
                goto python;
            while (p < end && is_space(*p))
                p++;
            if (p < end && (*p == '>' || *p == '/'))
                continue;
            const char *name = p;
            while (p < end && (((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') || (*p >= '0' && *p <= '9') || *p == ':' ||
                               *p == '.' || *p == '_' || *p == '-'))
                p++;
            Py_ssize_t name_len = p - name;
            if (name_len == 0 || !starts(p, end, "=\"", 2))
                goto python;
            p += 2;
            const char *value = p;
            while (p < end && *p != '"' && *p != '<' && *p != '>')
                p++;
            if (p == end || *p != '"')
                goto python;
            Py_ssize_t value_len = p - value;
            p++;
            if (name_len != 1)
                continue; /* cm, vm, ph, ...: not needed for the value */
            if (*name == 'r') {
                if (seen_r++)
                    goto python;
                Py_ssize_t i = 0;
                long index = 0;
                while (i < value_len && value[i] >= 'A' && value[i] <= 'Z')
                    index = index * 26 + (value[i++] - 'A' + 1);
                if (i == 0 || i > 3)
                    goto python;
                for (Py_ssize_t j = i; j < value_len; j++)
                    if (value[j] < '0' || value[j] > '9')
                        goto python;
                if (index > MAX_COLUMNS)
                    goto python;
                ref = index - 1;
            } else if (*name == 's') {
                if (seen_s++ || value_len > 9)
                    goto python;
                if (value_len == 0)
                    continue; /* s="": no style */
                style = 0;
                for (Py_ssize_t j = 0; j < value_len; j++) {
                    if (value[j] < '0' || value[j] > '9')
                        goto python;
                    style = style * 10 + (value[j] - '0');
                }
            } else if (*name == 't') {
                if (seen_t++)
                    goto python;
                if (value_len == 1 && *value == 's') kind = K_S;
                else if (value_len == 1 && *value == 'n') kind = K_N;
                else if (value_len == 1 && *value == 'b') kind = K_B;
                else if (value_len == 3 && memcmp(value, "str", 3) == 0) kind = K_STR;
                else if (value_len == 9 && memcmp(value, "inlineStr", 9) == 0) kind = K_INLINE;
                else goto python; /* e, d, or a type the Python loop reads as text */
            }
        }
        col = ref >= 0 ? ref : col + 1;
        if (col >= MAX_COLUMNS)
            goto python;
        /* Content: nothing, a plain <v>, or a plain inline <is><t>. */
        const char *v = NULL, *text = NULL;
        Py_ssize_t v_len = 0, text_len = 0;
        int trim = 0; /* an inline <t> without xml:space="preserve" */
        if (!closed) {
            if (starts(p, end, "</c>", 4)) {
                p += 4;
            } else if (starts(p, end, "<v>", 3)) {
                v = p + 3;
                const char *lt = memchr(v, '<', end - v);
                if (lt == NULL || !starts(lt, end, "</v></c>", 8))
                    goto python;
                v_len = lt - v;
                p = lt + 8;
            } else if (starts(p, end, "<is><t", 6) && kind == K_INLINE) {
                p += 6;
                if (starts(p, end, " xml:space=\"preserve\">", 22)) {
                    p += 22;
                } else if (starts(p, end, ">", 1)) {
                    p += 1;
                    trim = 1;
                } else {
                    goto python;
                }
                text = p;
                const char *lt = memchr(text, '<', end - text);
                if (lt == NULL || !starts(lt, end, "</t></is></c>", 13))
                    goto python;
                text_len = lt - text;
                p = lt + 13;
            } else {
                goto python;
            }
        }
        PyObject *value;
        if (kind == K_INLINE) {
            if (v_len > 0)
                goto python; /* an inline string with a <v>: read as text by the Python loop */
            if (text == NULL)
                value = PyUnicode_FromStringAndSize("", 0);
            else
                value = (trim ? trimmed_text_or_decode : text_or_decode)(text, text_len, decode);
            if (value == NULL)
                goto python_or_fail;
        } else if (v_len == 0) {
            continue; /* no value: an empty cell (style only) */
        } else if (kind == K_NONE || kind == K_N) {
            if (style >= 0 && style < n_styles && styles[style]) {
                double serial;
                value = styles[style] == 1 && double_of(v, v_len, &serial) ? datetime_of(serial, epoch, date1904)
                                                                           : NULL;
                if (value == NULL && PyErr_Occurred())
                    goto fail;
                if (value == NULL) { /* a time of day, a duration, or a number read by float() */
                    PyObject *raw = PyBytes_FromStringAndSize(v, v_len);
                    PyObject *number = raw ? PyLong_FromLong(style) : NULL;
                    value = number ? PyObject_CallFunctionObjArgs(date_cell, raw, number, NULL) : NULL;
                    Py_XDECREF(raw);
                    Py_XDECREF(number);
                    if (value == NULL) {
                        if (!PyErr_ExceptionMatches(PyExc_ValueError) && !PyErr_ExceptionMatches(PyExc_OverflowError))
                            goto fail;
                        PyErr_Clear(); /* not a date Excel can show: the Python loop says so at the cell */
                        goto python;
                    }
                }
            } else {
                value = number_of(v, v_len);
                if (value == NULL) {
                    if (PyErr_Occurred())
                        goto fail;
                    goto python;
                }
            }
        } else if (kind == K_S) {
            Py_ssize_t index = 0;
            if (v_len > 9)
                goto python;
            for (Py_ssize_t j = 0; j < v_len; j++) {
                if (v[j] < '0' || v[j] > '9')
                    goto python;
                index = index * 10 + (v[j] - '0');
            }
            if (index >= book->n_strings)
                goto python;
            /* The first texts of the table are cached, each in its slot for good: a table lists its texts in the
             * order they first appear, so a column of few values (a category, a status) has them among the first,
             * and a column of unique values (ids, e-mails) evicts nothing. */
            Py_ssize_t slot = index;
            if (index < book->n_cache && book->cached[slot] == index) {
                value = PyList_GET_ITEM(book->cache, slot);
                Py_INCREF(value);
            } else {
                uint32_t from = index ? book->ends[index - 1] : 0, to = book->ends[index];
                if (to < from)
                    goto python;
                value = PyUnicode_DecodeUTF8(book->data + from, to - from, "surrogatepass");
                if (value == NULL)
                    goto fail;
                if (index < book->n_cache && to - from <= 64) { /* a short one: kept for the next cell showing it */
                    Py_INCREF(value);
                    PyList_SetItem(book->cache, slot, value); /* steals the new reference */
                    book->cached[slot] = index;
                }
            }
        } else if (kind == K_B) {
            const char *a = v, *b = v + v_len; /* bytes.strip(): ASCII whitespace */
            while (a < b && (is_space(*a) || *a == '\v' || *a == '\f'))
                a++;
            while (b > a && (is_space(b[-1]) || b[-1] == '\v' || b[-1] == '\f'))
                b--;
            int truth = (b - a == 1 && *a == '1') || (b - a == 4 && memcmp(a, "true", 4) == 0);
            value = truth ? Py_True : Py_False;
            Py_INCREF(value);
        } else if (kind == K_STR) {
            value = text_or_decode(v, v_len, decode);
            if (value == NULL)
                goto python_or_fail;
        } else {
            goto python;
        }
        /* Place it at its column: gaps hold None, a column written twice keeps the last value. */
        Py_ssize_t have = PyList_GET_SIZE(values);
        if (col < have) {
            PyList_SetItem(values, col, value); /* steals value */
            continue;
        }
        for (; have < col; have++)
            if (PyList_Append(values, Py_None) < 0) {
                Py_DECREF(value);
                goto fail;
            }
        int failed = PyList_Append(values, value);
        Py_DECREF(value);
        if (failed < 0)
            goto fail;
    }
python_or_fail:
    if (PyErr_Occurred())
        goto fail;
python:
    Py_DECREF(values);
    Py_RETURN_NONE;
fail:
    Py_DECREF(values);
    return NULL;
}

static PyObject *scan(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    struct book book;
    if (nargs != 3 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "scan(piece: bytes, start: int, book: tuple)");
        return NULL;
    }
    if (book_of(args[2], &book) < 0)
        return NULL;
    Py_ssize_t start = PyLong_AsSsize_t(args[1]), size = PyBytes_GET_SIZE(args[0]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    if (start < 0 || start > size) {
        PyErr_SetString(PyExc_ValueError, "start is outside the piece");
        return NULL;
    }
    const char *base = PyBytes_AS_STRING(args[0]);
    return cells(base + start, base + size, &book);
}

static const char *rfind(const char *p, const char *end, const char *lit, Py_ssize_t n) {
    for (const char *q = end - n; q >= p; q--)
        if (*q == lit[0] && memcmp(q, lit, n) == 0)
            return q;
    return NULL;
}

/* The ">" that ends a tag whose name ends before ``p``; NULL where a "<" (or ``end``) comes first. */
static const char *head_end_of(const char *p, const char *end) {
    for (; p < end; p++) {
        if (*p == '>')
            return p;
        if (*p == '<')
            return NULL;
    }
    return NULL;
}

/* A row head's number as reader._block_rows reads it: its r="digits", else the row after ``previous``; 0 where
 * the Python loop must read the head (r written another way, a number it must refuse). */
static long row_number_of(const char *head, const char *end, long previous) {
    const char *r = find(head, end, " r=\"", 4);
    if (r != NULL) {
        long n = 0;
        const char *q = r + 4;
        for (; q < end && *q >= '0' && *q <= '9' && n <= MAX_ROWS; q++)
            n = n * 10 + (*q - '0');
        return q < end && *q == '"' && q > r + 4 && n >= 1 && n <= MAX_ROWS ? n : 0;
    }
    for (const char *q = head + 4; q + 1 < end; q++) /* an r attribute in other quotes or spacing */
        if ((is_space(*q) || *q == '\v' || *q == '\f') && q[1] == 'r') {
            const char *e = q + 2;
            while (e < end && (is_space(*e) || *e == '\v' || *e == '\f'))
                e++;
            if (e < end && *e == '=')
                return 0;
        }
    return previous < MAX_ROWS ? previous + 1 : 0;
}

/* rows(block, previous, book, row_values) -> (rows, last, rest): the rows of a block as reader._block_rows gives
 * them, ``(number, values)`` for each row with a value, up to the first row whose head (or an empty row before
 * it) the Python loop must read: it goes on from offset ``rest`` (the block's length when all is read), after the
 * row numbered ``last``. A row whose cells ``cells`` leaves to Python is read by row_values(piece, head_end,
 * number), whose errors are raised as they are. */
static PyObject *rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    struct book book;
    if (nargs != 4 || !PyBytes_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "rows(block: bytes, previous: int, book: tuple, row_values)");
        return NULL;
    }
    if (book_of(args[2], &book) < 0)
        return NULL;
    long previous = PyLong_AsLong(args[1]);
    if (previous == -1 && PyErr_Occurred())
        return NULL;
    PyObject *row_values = args[3];
    const char *base = PyBytes_AS_STRING(args[0]), *end = base + PyBytes_GET_SIZE(args[0]);
    const char *piece = base;
    PyObject *found = PyList_New(0);
    if (found == NULL)
        return NULL;
    while (piece < end) {
        const char *close = find(piece, end, "</row>", 6);
        const char *stop = close ? close : end;
        const char *next = close ? close + 6 : end;
        const char *start = rfind(piece, stop, "<row", 4);
        if (start == NULL) {
            piece = next;
            continue;
        }
        /* Empty rows (<row .../>) before this one count too, as reader._numbered counts them. Each head ends at
         * its ">", never past the next "<": a run of "<row" without ">" is left to the Python loop (which refuses
         * it) after one look at each, instead of a search to the end of the block from each (quadratic). */
        long number = previous; /* 0 before a sheet's first row: "left to Python" is said by ``ok`` */
        int ok = 1;
        for (const char *x = find(piece, start, "<row", 4); x != NULL && ok; x = find(x + 4, start, "<row", 4)) {
            const char *empty_end = x + 4 < start && !is_word(x[4]) ? head_end_of(x + 4, start) : NULL;
            number = empty_end ? row_number_of(x, empty_end, number) : 0;
            ok = number != 0;
        }
        const char *head_end = ok ? head_end_of(start + 4, stop) : NULL;
        number = head_end ? row_number_of(start, head_end, number) : 0;
        if (number == 0)
            break; /* a head the Python loop reads (and may refuse): it goes on from this piece */
        previous = number;
        if (head_end > start && head_end[-1] == '/') { /* <row .../>: an empty row */
            piece = next;
            continue;
        }
        PyObject *values = cells(head_end + 1, stop, &book);
        if (values == Py_None) {
            Py_DECREF(values);
            values = PyObject_CallFunction(row_values, "y#nl", piece, (Py_ssize_t)(stop - piece),
                                           (Py_ssize_t)(head_end - piece), number);
        }
        if (values == NULL)
            goto fail;
        if (PyObject_IsTrue(values)) {
            PyObject *row = Py_BuildValue("(lO)", number, values);
            if (row == NULL || PyList_Append(found, row) < 0) {
                Py_XDECREF(row);
                Py_DECREF(values);
                goto fail;
            }
            Py_DECREF(row);
        }
        Py_DECREF(values);
        piece = next;
    }
    return Py_BuildValue("(Nln)", found, previous, (Py_ssize_t)(piece - base));
fail:
    Py_DECREF(found);
    return NULL;
}

static PyObject *shared(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "shared(block: bytes, decode)");
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(args[0]), *end = p + PyBytes_GET_SIZE(args[0]);
    PyObject *decode = args[1];
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (;;) {
        const char *si = find(p, end, "<si", 3);
        if (si == NULL)
            return out;
        const char *a = si + 3, *k = a;
        if (a < end && is_word(*a))
            goto python; /* <sil...: not a string element, and the regex skips it its own way */
        while (k < end && *k != '<' && *k != '>')
            k++;
        if (k == end || *k == '<')
            goto python;
        PyObject *item;
        if (k > a && k[-1] == '/') { /* <si/> */
            item = PyUnicode_FromStringAndSize("", 0);
            p = k + 1;
        } else {
            const char *c = k + 1, *e = find(c, end, "</si>", 5);
            if (e == NULL || find(c, e, "<si", 3) != NULL)
                goto python;
            const char *t = NULL;
            int trim = 0; /* a <t> without xml:space="preserve": its edges' whitespace is trimmed */
            if (starts(c, e, "<t>", 3))
                t = c + 3, trim = 1;
            else if (starts(c, e, "<t xml:space=\"preserve\">", 24))
                t = c + 24;
            const char *lt = t ? memchr(t, '<', e - t) : NULL;
            item = NULL;
            if (lt != NULL && lt == e - 4 && starts(lt, e, "</t>", 4)) {
                item = (trim ? trimmed_text_or_decode : text_or_decode)(t, lt - t, decode);
                if (item == NULL && PyErr_Occurred()) {
                    Py_DECREF(out);
                    return NULL;
                }
            }
            if (item == NULL) /* rich text, phonetic runs, or a text refused: the Python code reads it */
                item = e == c ? PyUnicode_FromStringAndSize("", 0) : PyBytes_FromStringAndSize(c, e - c);
            p = e + 5;
        }
        if (item == NULL || PyList_Append(out, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(item);
    }
python:
    Py_DECREF(out);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(piece, start, book) -> the row's values by column, or None where the Python reader must read the row"},
    {"rows", (PyCFunction)(void (*)(void))rows, METH_FASTCALL,
     "rows(block, previous, book, row_values) -> (rows, last row, offset where the Python loop goes on)"},
    {"shared", (PyCFunction)(void (*)(void))shared, METH_FASTCALL,
     "shared(block, decode) -> the block's shared strings (str, or bytes for the Python code to read), or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_cells", NULL, 0, methods};

PyMODINIT_FUNC PyInit__cells(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    return PyModule_Create(&module);
}
