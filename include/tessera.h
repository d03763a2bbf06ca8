/* Tessera: a CPU-first, portable LLM inference runtime. The public C API.
 *
 * This is the only header an application needs. Conventions:
 * - Every call that can fail returns a tessera_status; on failure,
 *   tessera_last_error() gives a message for the calling thread (valid until that
 *   thread's next failing call).
 * - Handles are opaque. Whatever a function returns through a pointer to a handle is
 *   owned by the caller and released with the matching *_close / *_free function.
 * - Pointers into a handle (strings, values, tensor data) stay valid until that handle
 *   is closed.
 * - No C++ exception crosses this boundary.
 */
#ifndef TESSERA_H
#define TESSERA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status and errors ---------------------------------------------------------- */

typedef enum tessera_status {
    TESSERA_OK = 0,
    TESSERA_ERROR_INVALID_ARGUMENT = 1, /* a null handle, an index out of range, ... */
    TESSERA_ERROR_IO = 2,               /* missing file, permission denied, short write */
    TESSERA_ERROR_BAD_FILE = 3,         /* a malformed or hostile file */
    TESSERA_ERROR_UNSUPPORTED = 4,      /* well-formed, but not something this build runs */
    TESSERA_ERROR_TYPE_MISMATCH = 5,    /* a value read as the wrong type */
    TESSERA_ERROR_OUT_OF_MEMORY = 6,
    TESSERA_ERROR_INTERNAL = 7
} tessera_status;

/* The message of the calling thread's last failure ("" if none). Never NULL. */
const char* tessera_last_error(void);

/* A short name for a status code ("ok", "bad file", ...). Never NULL. */
const char* tessera_status_name(tessera_status status);

/* The library version, e.g. "0.1.0". Never NULL. */
const char* tessera_version(void);

/* ---- element and block types (ids equal GGUF's type ids) ------------------------ */

/* The type's name ("F32", "Q4_K", ...), or NULL for an unknown id. */
const char* tessera_type_name(int32_t type);
/* Elements per block (1 for plain types), or 0 for an unknown id. */
int32_t tessera_type_block_size(int32_t type);
/* Bytes per block, or 0 for an unknown id. */
int32_t tessera_type_size(int32_t type);

/* ---- GGUF inspection ------------------------------------------------------------
 * Opens a GGUF file read-only (memory-mapped) and validates all of it before any use;
 * a malformed file fails to open with TESSERA_ERROR_BAD_FILE and a message naming the
 * file, the field and the byte offset. An open file may be read from several threads.
 */

typedef struct tessera_gguf tessera_gguf;
typedef struct tessera_gguf_value tessera_gguf_value;

typedef enum tessera_gguf_type {
    TESSERA_GGUF_UINT8 = 0,
    TESSERA_GGUF_INT8 = 1,
    TESSERA_GGUF_UINT16 = 2,
    TESSERA_GGUF_INT16 = 3,
    TESSERA_GGUF_UINT32 = 4,
    TESSERA_GGUF_INT32 = 5,
    TESSERA_GGUF_FLOAT32 = 6,
    TESSERA_GGUF_BOOL = 7,
    TESSERA_GGUF_STRING = 8,
    TESSERA_GGUF_ARRAY = 9,
    TESSERA_GGUF_UINT64 = 10,
    TESSERA_GGUF_INT64 = 11,
    TESSERA_GGUF_FLOAT64 = 12
} tessera_gguf_type;

/* Opens and validates `path`; on success *out owns the file (close it with
 * tessera_gguf_close). On failure *out is set to NULL. */
tessera_status tessera_gguf_open(const char* path, tessera_gguf** out);
/* Releases the file and everything pointing into it. NULL is ignored. */
void tessera_gguf_close(tessera_gguf* file);

uint32_t tessera_gguf_version(const tessera_gguf* file);     /* 2 or 3 */
uint64_t tessera_gguf_alignment(const tessera_gguf* file);   /* of the tensor data */
uint64_t tessera_gguf_data_offset(const tessera_gguf* file); /* where tensor data starts */
uint64_t tessera_gguf_file_size(const tessera_gguf* file);

/* Metadata: key/value pairs in file order. */
int64_t tessera_gguf_kv_count(const tessera_gguf* file);
/* The i-th key (NUL-terminated), or NULL when i is out of range. */
const char* tessera_gguf_kv_key(const tessera_gguf* file, int64_t i);
/* The i-th value, or NULL when i is out of range. */
const tessera_gguf_value* tessera_gguf_kv_value(const tessera_gguf* file, int64_t i);
/* The index of `key`, or -1 when absent. */
int64_t tessera_gguf_find_key(const tessera_gguf* file, const char* key);

/* A value's type, and a type's name ("uint32", "string", ...; "?" if unknown). */
tessera_gguf_type tessera_gguf_value_type(const tessera_gguf_value* value);
const char* tessera_gguf_type_name(tessera_gguf_type type);

/* Scalars. _int and _uint accept every integer type and bool (checking the range);
 * _float accepts every numeric type. TESSERA_ERROR_TYPE_MISMATCH otherwise. */
tessera_status tessera_gguf_value_int(const tessera_gguf_value* value, int64_t* out);
tessera_status tessera_gguf_value_uint(const tessera_gguf_value* value, uint64_t* out);
tessera_status tessera_gguf_value_float(const tessera_gguf_value* value, double* out);
/* A string's bytes (not NUL-terminated; may hold any bytes) and length. */
tessera_status tessera_gguf_value_string(const tessera_gguf_value* value, const char** data, size_t* len);

/* Arrays: the element type and length (TESSERA_GGUF_UINT8 and 0 for a non-array). */
tessera_gguf_type tessera_gguf_array_type(const tessera_gguf_value* value);
uint64_t tessera_gguf_array_length(const tessera_gguf_value* value);
tessera_status tessera_gguf_array_int(const tessera_gguf_value* value, uint64_t i, int64_t* out);
tessera_status tessera_gguf_array_uint(const tessera_gguf_value* value, uint64_t i, uint64_t* out);
tessera_status tessera_gguf_array_float(const tessera_gguf_value* value, uint64_t i, double* out);
tessera_status tessera_gguf_array_string(const tessera_gguf_value* value, uint64_t i, const char** data,
                                         size_t* len);
/* The i-th element of an array of arrays, or NULL (with the error set). */
const tessera_gguf_value* tessera_gguf_array_item(const tessera_gguf_value* value, uint64_t i);

/* Tensors, in file order. */
typedef struct tessera_tensor_info {
    const char* name; /* NUL-terminated */
    int32_t type;     /* a GGUF type id; see tessera_type_name */
    int32_t n_dims;   /* 1 to 4 */
    int64_t ne[4];    /* elements per dimension, ne[0] the fastest; unused ones are 1 */
    uint64_t offset;  /* from the start of the data section */
    uint64_t size;    /* bytes */
    const void* data; /* inside the mapping */
} tessera_tensor_info;

int64_t tessera_gguf_tensor_count(const tessera_gguf* file);
tessera_status tessera_gguf_tensor(const tessera_gguf* file, int64_t i, tessera_tensor_info* out);
/* The index of the tensor named `name`, or -1 when absent. */
int64_t tessera_gguf_find_tensor(const tessera_gguf* file, const char* name);

/* ---- models and tokenization ----------------------------------------------------
 * A model is immutable once loaded and may be used from several threads at once; a
 * detokenizer belongs to one thread at a time. Token ids are int32_t; functions that
 * return an id return -1 for "none".
 */

typedef struct tessera_model tessera_model;

typedef struct tessera_model_params {
    int32_t vocab_only;        /* 1: load only the tokenizer (the only mode this build supports yet) */
    int32_t allow_unknown_pre; /* 1: an unknown tokenizer.ggml.pre falls back to the GPT-2 split, with a warning */
} tessera_model_params;

/* The defaults: vocab_only = 1, allow_unknown_pre = 0. */
tessera_model_params tessera_model_default_params(void);

/* Opens `path` and loads its tokenizer (params may be NULL for the defaults); on success
 * *out owns the model (free it with tessera_model_free), on failure *out is NULL and the
 * error names the file and the bad key. Warnings (an unknown pre-tokenizer allowed to
 * fall back) go to stderr. vocab_only = 0 gives TESSERA_ERROR_UNSUPPORTED in this build. */
tessera_status tessera_model_load(const char* path, const tessera_model_params* params, tessera_model** out);
/* Releases the model. NULL is ignored. Detokenizers made from it must be freed first. */
void tessera_model_free(tessera_model* model);

/* The number of tokens in the vocabulary (0 for NULL). */
int32_t tessera_vocab_size(const tessera_model* model);
/* The beginning- and end-of-sequence token ids, -1 if the vocabulary has none. */
int32_t tessera_token_bos(const tessera_model* model);
int32_t tessera_token_eos(const tessera_model* model);

/* Tokenizes len bytes of text (any bytes; invalid UTF-8 is tokenized too, never an error).
 * add_special: add BOS/EOS (and SEP) as the model's metadata says. parse_special: the text
 * of control and user-defined tokens becomes those tokens; otherwise it is plain text.
 * Writes at most n_max ids; *n_out gets the number needed (call again with a larger
 * buffer when *n_out > n_max; nothing is truncated silently: the status is
 * TESSERA_ERROR_INVALID_ARGUMENT in that case). tokens may be NULL when n_max is 0. */
tessera_status tessera_tokenize(const tessera_model* model, const char* text, size_t len, int32_t add_special,
                                int32_t parse_special, int32_t* tokens, int32_t n_max, int32_t* n_out);

/* The raw piece of one token as the detokenizer would emit it (bytes, not NUL-terminated
 * unless room is left; may be a partial UTF-8 sequence, e.g. a byte token <0xE2>; empty
 * for control tokens such as BOS). Writes at most buf_size bytes; *len_out gets the
 * length needed; TESSERA_ERROR_INVALID_ARGUMENT when it does not fit or for an id out of
 * range. buf may be NULL when buf_size is 0. */
tessera_status tessera_token_to_piece(const tessera_model* model, int32_t token, char* buf, size_t buf_size,
                                      size_t* len_out);

/* The token's text exactly as the vocabulary stores it (e.g. "<s>", "\xe2\x96\x81the",
 * "<0x0A>"); *text points into the model (valid until it is freed), not NUL-terminated.
 * TESSERA_ERROR_INVALID_ARGUMENT for an id out of range. */
tessera_status tessera_token_text(const tessera_model* model, int32_t token, const char** text, size_t* len);

/* Detokenizes a whole sequence into valid UTF-8 text (an invalid or unfinished sequence
 * becomes U+FFFD; control tokens emit nothing; the space a SPM tokenizer put in front is
 * removed). Same sizing rule as tessera_token_to_piece with *len_out; a NUL follows the
 * text when room is left. TESSERA_ERROR_INVALID_ARGUMENT for an id out of range. */
tessera_status tessera_detokenize(const tessera_model* model, const int32_t* tokens, int32_t n, char* buf,
                                  size_t buf_size, size_t* len_out);

/* Streaming: feed tokens one at a time, get only complete UTF-8 text back. The pushed
 * text followed by tessera_detokenizer_flush equals tessera_detokenize of the same ids. */
typedef struct tessera_detokenizer tessera_detokenizer;
/* Makes a detokenizer for `model` (which must outlive it); free it with tessera_detokenizer_free. */
tessera_status tessera_detokenizer_new(const tessera_model* model, tessera_detokenizer** out);
/* Adds one token; *text and *len get the text it completed (maybe empty: an unfinished
 * character is held back). NUL-terminated; valid until the next call on d. An id out of
 * range gives TESSERA_ERROR_INVALID_ARGUMENT and leaves the state unchanged. */
tessera_status tessera_detokenizer_push(tessera_detokenizer* d, int32_t token, const char** text, size_t* len);
/* Ends the stream: whatever is held back comes out as U+FFFD; d then starts afresh. */
tessera_status tessera_detokenizer_flush(tessera_detokenizer* d, const char** text, size_t* len);
/* Releases the detokenizer. NULL is ignored. */
void tessera_detokenizer_free(tessera_detokenizer* d);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_H */
