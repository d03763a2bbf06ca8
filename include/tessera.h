/* Tessera: a CPU-first, portable LLM inference runtime. The public C API.
 *
 * This is the only header an application needs. Conventions:
 * - Every call that can fail returns a tessera_status; on failure,
 *   tessera_last_error() gives a message for the calling thread (valid until that
 *   thread's next failing call).
 * - Handles are opaque. Whatever a function returns through a pointer to a handle is
 *   owned by the caller and released with the matching *_close / *_free function; on
 *   failure that pointer is set to NULL. *_close / *_free ignore NULL.
 * - Pointers into a handle (strings, values, tensor data) stay valid until that handle
 *   is closed.
 * - A NULL handle or output pointer is TESSERA_ERROR_INVALID_ARGUMENT; functions that
 *   return a value instead of a status return 0, -1, NULL or "" for it, as noted.
 * - Threads: functions without a handle, and reads of a model or an open GGUF file, may
 *   run on several threads at once; a context, sampler or detokenizer is used by one
 *   thread at a time (each section says so).
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
    TESSERA_ERROR_INTERNAL = 7,
    TESSERA_ERROR_TEMPLATE_RAISED = 8,  /* a chat template called raise_exception(message) */
    TESSERA_ERROR_ABORTED = 9           /* the context's abort callback asked to stop */
} tessera_status;

/* The message of the calling thread's last failure ("" if none). Never NULL. */
const char* tessera_last_error(void);

/* A short name for a status code ("ok", "bad file", ...). Never NULL. */
const char* tessera_status_name(tessera_status status);

/* The library version, e.g. "0.1.0". Never NULL. */
const char* tessera_version(void);

/* One line on this build and machine: version, the CPU code path chosen at start-up and
 * the features it uses, hardware threads, backends present. Made once per process (the
 * same pointer every call, from any thread). Never NULL. */
const char* tessera_system_info(void);
/* The CPU kernels' code path, chosen at start-up for this CPU: on x86-64 "avx512_amx"
 * (AVX-512 VNNI plus AMX tiles for prompts), "avx512_vnni", "avx512", "avx2_vnni", "avx2" or
 * "sse4"; on 64-bit Arm "sve2", "sve", "neon_dotprod" or
 * "neon"; on any CPU the portable "emu128" or "scalar". TESSERA_CPU_TARGET=<name> forces a
 * lower one. Never NULL. */
const char* tessera_cpu_target(void);

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
/* Releases the file and everything pointing into it. NULL is ignored. Only for handles
 * from tessera_gguf_open: the handle of tessera_model_gguf belongs to its model. */
void tessera_gguf_close(tessera_gguf* file);

/* Facts of the file; 0 for NULL. */
uint32_t tessera_gguf_version(const tessera_gguf* file);     /* 2 or 3 */
uint64_t tessera_gguf_alignment(const tessera_gguf* file);   /* of the tensor data */
uint64_t tessera_gguf_data_offset(const tessera_gguf* file); /* where tensor data starts */
uint64_t tessera_gguf_file_size(const tessera_gguf* file);   /* bytes */

/* Metadata: key/value pairs in file order; the count is 0 for NULL. */
int64_t tessera_gguf_kv_count(const tessera_gguf* file);
/* The i-th key (NUL-terminated), or NULL when i is out of range or file is NULL. */
const char* tessera_gguf_kv_key(const tessera_gguf* file, int64_t i);
/* The i-th value, or NULL when i is out of range or file is NULL. */
const tessera_gguf_value* tessera_gguf_kv_value(const tessera_gguf* file, int64_t i);
/* The index of `key`, or -1 when absent (or an argument is NULL). */
int64_t tessera_gguf_find_key(const tessera_gguf* file, const char* key);

/* A value's type (TESSERA_GGUF_UINT8 for NULL), and a type's name ("uint32", "string",
 * ...; "?" for an unknown id; never NULL). */
tessera_gguf_type tessera_gguf_value_type(const tessera_gguf_value* value);
const char* tessera_gguf_type_name(tessera_gguf_type type);

/* Scalars. _int and _uint accept every integer type and bool, and fail on a value out of
 * their range (uint64 above INT64_MAX, a negative one for _uint); _float accepts every
 * numeric type. TESSERA_ERROR_TYPE_MISMATCH for those failures and any other type;
 * TESSERA_ERROR_INVALID_ARGUMENT for a NULL value or output. *out is left alone on failure. */
tessera_status tessera_gguf_value_int(const tessera_gguf_value* value, int64_t* out);
tessera_status tessera_gguf_value_uint(const tessera_gguf_value* value, uint64_t* out);
tessera_status tessera_gguf_value_float(const tessera_gguf_value* value, double* out);
/* A string's bytes (not NUL-terminated; may hold any bytes, NUL too) and length, inside
 * the file's mapping. */
tessera_status tessera_gguf_value_string(const tessera_gguf_value* value, const char** data, size_t* len);

/* Arrays: the element type and length (TESSERA_GGUF_UINT8 and 0 for a non-array or NULL).
 * The element readers convert as the scalar readers do: an index past the end is
 * TESSERA_ERROR_INVALID_ARGUMENT; a non-array, or elements of another kind (strings read
 * as numbers, ...), TESSERA_ERROR_TYPE_MISMATCH. */
tessera_gguf_type tessera_gguf_array_type(const tessera_gguf_value* value);
uint64_t tessera_gguf_array_length(const tessera_gguf_value* value);
tessera_status tessera_gguf_array_int(const tessera_gguf_value* value, uint64_t i, int64_t* out);
tessera_status tessera_gguf_array_uint(const tessera_gguf_value* value, uint64_t i, uint64_t* out);
tessera_status tessera_gguf_array_float(const tessera_gguf_value* value, uint64_t i, double* out);
tessera_status tessera_gguf_array_string(const tessera_gguf_value* value, uint64_t i, const char** data,
                                         size_t* len);
/* The i-th element of an array of arrays (itself an array value), or NULL with the error
 * set: not an array of arrays, i past the end, or value NULL. */
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

/* The number of tensors (0 for NULL). */
int64_t tessera_gguf_tensor_count(const tessera_gguf* file);
/* Fills *out with the i-th tensor (its pointers valid until the file is closed);
 * TESSERA_ERROR_INVALID_ARGUMENT for an index out of range or a NULL argument. */
tessera_status tessera_gguf_tensor(const tessera_gguf* file, int64_t i, tessera_tensor_info* out);
/* The index of the tensor named `name`, or -1 when absent (or an argument is NULL). */
int64_t tessera_gguf_find_tensor(const tessera_gguf* file, const char* name);

/* ---- models and tokenization ----------------------------------------------------
 * A model is immutable once loaded and may be used from several threads at once; a
 * detokenizer belongs to one thread at a time. Token ids are int32_t; functions that
 * return an id return -1 for "none".
 */

typedef struct tessera_model tessera_model;

/* Load progress in [0, 1]; return 0 to cancel the load. */
typedef int32_t (*tessera_progress_fn)(float progress, void* user);

/* How a model's GPU layers spread over several GPUs. */
enum { TESSERA_SPLIT_NONE = 0, TESSERA_SPLIT_LAYER = 1 };

typedef struct tessera_model_params {
    int32_t vocab_only;        /* 1: load only the tokenizer (to tokenize; no contexts) */
    int32_t allow_unknown_pre; /* 1: an unknown tokenizer.ggml.pre falls back to the GPT-2 split, with a warning */
    int32_t use_mmap;          /* 1: weights stay in the memory-mapped file (no copy); 0: read into memory */
    int32_t repack;            /* 1: weights whose type has an interleaved kernel on this CPU (Q4_0,
                                  Q4_1, Q8_0 and Q4_K with AVX2; also Q6_K, F16 and F32 with AVX-512 VNNI; BF16 with AVX-512 BF16) are rearranged at load for faster prompt processing,
                                  and their file pages released; 0: all weights keep the file's layout */
    tessera_progress_fn progress; /* optional */
    void* progress_user;
    int32_t n_gpu_layers; /* layers (weights and KV cache) on the GPU, counted from the last one; the output
                             head goes with the last layer. -1: all that fit when there is a GPU; 0: none;
                             more than the model has: all. Without a GPU the CPU runs everything. */
    const char* device;   /* the GPUs to use by name, comma-separated ("CUDA0", "CUDA0,CUDA1", as
                             tessera_system_info lists them; a name listed again gets another instance of
                             that device); NULL or "": the first GPU and, split by layer, every other GPU
                             of its kind. An unknown name fails the load. */
    int32_t split_mode;   /* TESSERA_SPLIT_LAYER (default): the GPU layers spread over the GPUs, consecutive
                             layers on each, in proportion to tensor_split or else to their free memory;
                             TESSERA_SPLIT_NONE: one GPU */
    const float* tensor_split; /* n_tensor_split proportions, one per GPU in use, in order; NULL: by their
                             free memory */
    int32_t n_tensor_split;
    const char* const* tensor_overrides; /* n_tensor_overrides strings "PATTERN=DEVICE": a weight whose name
                             contains a match of PATTERN (an ECMAScript regular expression) goes to DEVICE ("CPU"
                             or the GPU), whatever n_gpu_layers says; the first match decides */
    int32_t n_tensor_overrides;
    uint64_t gpu_mem;     /* bytes of the GPU that n_gpu_layers = -1 may fill: the layers' weights and KV cache
                             (at plan_n_ctx cells) and a compute buffer; 0: its free memory less 512 MiB */
    int32_t plan_n_ctx;   /* the context n_gpu_layers = -1 makes room for; 0: the model's training context,
                             at most 4096 (the contexts' default) */
    int32_t plan_n_threads; /* the CPU threads it weighs the CPU's speed at; 0: all cores */
} tessera_model_params;

/* The defaults: vocab_only = 0, allow_unknown_pre = 0, use_mmap = 1, repack = 1, no progress callback,
 * n_gpu_layers = -1, device = NULL, split_mode = TESSERA_SPLIT_LAYER, no tensor split, no tensor
 * overrides, gpu_mem = 0, plan_n_ctx = 0, plan_n_threads = 0.
 *
 * n_gpu_layers = -1 asks a cost model (see tessera_fit): of the layer counts whose GPU share fits
 * gpu_mem, the one predicted fastest for a 512-token prompt and 128 generated tokens. A GPU named
 * in `device` gets as many layers as fit; a GPU found by default is first measured against the
 * CPU (once per machine: the speeds are kept in ~/.cache/tessera/rates.tsv, or the file
 * TESSERA_RATES_FILE names), so a GPU slower than the cores gets none. */
tessera_model_params tessera_model_default_params(void);

/* Opens `path` and loads its tokenizer and (unless vocab_only) its weights; params may be
 * NULL for the defaults. On success *out owns the model (free it with tessera_model_free),
 * on failure *out is NULL and the error names the file and what is wrong: a bad key, an
 * unsupported architecture (listing the supported ones), every missing or misshapen
 * tensor. Warnings (an unknown pre-tokenizer allowed to fall back) go to stderr. */
tessera_status tessera_model_load(const char* path, const tessera_model_params* params, tessera_model** out);
/* Releases the model. NULL is ignored. Contexts and detokenizers made from it must be
 * freed first; its tessera_model_gguf handle goes with it. */
void tessera_model_free(tessera_model* model);

/* The number of tokens in the vocabulary (0 for NULL). */
int32_t tessera_vocab_size(const tessera_model* model);
/* The beginning- and end-of-sequence token ids, -1 if the vocabulary has none (or NULL). */
int32_t tessera_token_bos(const tessera_model* model);
int32_t tessera_token_eos(const tessera_model* model);
/* 1 when generation ends at `token`: end of sequence or text, end of turn or message
 * (<|im_end|>, <end_of_turn>, <|eot_id|>, Phi-3's <|end|>, ...), as the metadata and the
 * vocabulary's markers say; 0 otherwise (and for NULL or an id out of range). */
int32_t tessera_token_is_eog(const tessera_model* model, int32_t token);

/* Tokenizes len bytes of text (any bytes; invalid UTF-8 is tokenized too, never an error).
 * add_special: add BOS/EOS (and SEP) as the model's metadata says. The text of the
 * vocabulary's user-defined tokens (e.g. Gemma's runs of spaces and newlines) always
 * becomes those tokens; parse_special: the text of control tokens (e.g. <|im_start|>) does
 * too, otherwise it is plain text.
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
/* Makes a detokenizer for `model` (which must outlive it); free it with
 * tessera_detokenizer_free. TESSERA_ERROR_INVALID_ARGUMENT for a NULL model or out. */
tessera_status tessera_detokenizer_new(const tessera_model* model, tessera_detokenizer** out);
/* Adds one token; *text and *len get the text it completed (maybe empty: an unfinished
 * character is held back). NUL-terminated; valid until the next call on d. An id out of
 * range gives TESSERA_ERROR_INVALID_ARGUMENT and leaves the state unchanged. */
tessera_status tessera_detokenizer_push(tessera_detokenizer* d, int32_t token, const char** text, size_t* len);
/* Ends the stream: whatever is held back comes out as U+FFFD (text and len as for push);
 * d then starts afresh. */
tessera_status tessera_detokenizer_flush(tessera_detokenizer* d, const char** text, size_t* len);
/* Releases the detokenizer. NULL is ignored. */
void tessera_detokenizer_free(tessera_detokenizer* d);

/* ---- contexts, decoding and sampling ----------------------------------------------
 * A context holds one sequence's KV cache and the logits of its last decode. Several
 * contexts may share one model, each used from its own thread; one context belongs to
 * one thread at a time.
 */

typedef struct tessera_context tessera_context;

/* The most CPU threads a context or a conversion takes. */
#define TESSERA_MAX_THREADS 512

typedef struct tessera_context_params {
    int32_t n_ctx;     /* tokens the sequence may hold; 0: the model's training context, at most 4096 */
    int32_t n_batch;   /* tokens per forward pass; 0: 512 */
    int32_t n_threads; /* CPU threads, 0..TESSERA_MAX_THREADS; 0: all cores */
    int32_t kv_type;   /* type id of the KV cache: 1 (F16, the default), 0 (F32) or 8 (Q8_0) */
    int32_t parse_special; /* tessera_generate: 1 (the default) turns control-token text in
                              prompts (<|im_start|>, ...) into those tokens, as a rendered chat
                              template needs; 0 keeps all prompt text plain text (untrusted
                              input cannot inject control tokens) */
    int32_t n_seq;     /* 0: one sequence (tessera_decode); 1 or more: that many sequences, each
                          holding up to n_ctx / n_seq tokens (tessera_decode_seqs, as a server
                          batching its users does) */
} tessera_context_params;

/* The defaults: n_ctx 0, n_batch 512, n_threads 0, kv_type F16, parse_special 1, n_seq 0. */
tessera_context_params tessera_context_default_params(void);
/* Makes a context for a model loaded with weights (vocab_only = 0); *out owns it (free it
 * with tessera_context_free before the model). params may be NULL for the defaults.
 * TESSERA_ERROR_INVALID_ARGUMENT for a NULL model or out, a vocab-only model, a negative
 * n_ctx, n_threads outside 0..TESSERA_MAX_THREADS or another kv_type;
 * TESSERA_ERROR_OUT_OF_MEMORY when the KV cache does not fit. */
tessera_status tessera_context_new(const tessera_model* model, const tessera_context_params* params,
                                   tessera_context** out);
/* Releases the context. NULL is ignored. */
void tessera_context_free(tessera_context* ctx);
/* The context size in tokens, and how many tokens the sequence holds now (0 for NULL). */
int32_t tessera_context_n_ctx(const tessera_context* ctx);
int32_t tessera_context_n_past(const tessera_context* ctx);
/* Forgets the tokens from position n on (0 clears the sequence; n is clamped to
 * [0, n_past]) and returns how many tokens the sequence keeps: n, or 0 when the model's
 * sliding-window layers no longer hold the tokens that position n would attend to
 * (decode from there again). 0 for NULL. */
int32_t tessera_context_truncate(tessera_context* ctx, int32_t n);

/* Appends n tokens to the sequence and runs the model over them (in batches of n_batch).
 * all_logits = 0 keeps the logits of the last token only; 1 keeps every token's. Tokens
 * that do not fit in the context, an id outside the vocabulary, n <= 0 or a NULL
 * argument give TESSERA_ERROR_INVALID_ARGUMENT and leave the sequence as it was; so does
 * any other failure (out of memory, TESSERA_ERROR_ABORTED). */
tessera_status tessera_decode(tessera_context* ctx, const int32_t* tokens, int32_t n, int32_t all_logits);
/* ---- several sequences in one context (n_seq >= 1) ----
 * The cache's cells are split evenly: each sequence has n_ctx / n_seq of them, and each
 * token sees only the cells of its own sequence. One decode runs tokens of any sequences
 * together, so a server advances all its users in one pass; a sequence's logits are the
 * same whatever else the batch holds (on the CPU, bit for bit). */
typedef struct tessera_seq_token {
    int32_t token;
    int32_t seq;    /* 0 .. n_seq - 1 */
    int32_t logits; /* 1: keep this token's logits (output rows 0, 1, ... in batch order) */
} tessera_seq_token;
/* Appends each token to its sequence (at that sequence's next position) and runs the model
 * over them, in batches of n_batch. More tokens than a sequence's free cells, a sequence or token id out
 * of range, n <= 0, a context made with n_seq 0 or a NULL argument give
 * TESSERA_ERROR_INVALID_ARGUMENT; on any failure every sequence is as it was. */
tessera_status tessera_decode_seqs(tessera_context* ctx, const tessera_seq_token* batch, int32_t n);
/* Tokens sequence `seq` holds (0 for an unknown sequence or NULL). */
int32_t tessera_seq_len(const tessera_context* ctx, int32_t seq);
/* Tokens one sequence may hold: n_ctx / n_seq (n_ctx with n_seq 0; 0 for NULL). */
int32_t tessera_seq_cells(const tessera_context* ctx);
/* Forgets the tokens of sequence `seq` from position n on (0: all), freeing their cells.
 * Out-of-range arguments and NULL are ignored. */
void tessera_seq_truncate(tessera_context* ctx, int32_t seq, int32_t n);
/* A sequence's first n tokens kept outside the context: a server's cache of prompts, to
 * serve a prompt again after its sequence moved on to another. The state is valid in any
 * sequence of a context made from the same model with the same n_ctx, n_seq and KV cache
 * type. tessera_seq_state_size: the bytes of n tokens' state (0 for a context with n_seq 0,
 * n outside 0..tessera_seq_cells or NULL). save: copies the first n tokens of sequence
 * `seq` (n <= tessera_seq_len) into dst, whose size must be exactly that. load: sequence
 * `seq` then holds the n tokens of the state in src (what it held is forgotten); a size
 * that does not match gives TESSERA_ERROR_INVALID_ARGUMENT and changes nothing. */
size_t tessera_seq_state_size(const tessera_context* ctx, int32_t n);
tessera_status tessera_seq_state_save(const tessera_context* ctx, int32_t seq, int32_t n, void* dst, size_t size);
tessera_status tessera_seq_state_load(tessera_context* ctx, int32_t seq, int32_t n, const void* src, size_t size);
/* Cells no sequence holds, all sequences together (with n_seq 0: n_ctx - n_past; 0 for NULL). */
int32_t tessera_context_free_cells(const tessera_context* ctx);

/* What a context and its model hold on each device: the weights, the context's KV cache and its
 * compute buffers (which grow to the largest step decoded so far). */
typedef struct tessera_memory {
    uint64_t gpu_weight_bytes, gpu_kv_bytes, gpu_compute_bytes;
    uint64_t cpu_weight_bytes, cpu_kv_bytes, cpu_compute_bytes;
} tessera_memory;
tessera_status tessera_context_memory(const tessera_context* ctx, tessera_memory* out);

/* Asked on the decoding thread between the steps of a decode (every millisecond or so
 * while one runs); returning non-zero stops it: tessera_decode and tessera_generate then
 * return TESSERA_ERROR_ABORTED, and the sequence is as it was before the decode that was
 * stopped (tokens tessera_generate handed over earlier stay). For Ctrl-C in a terminal,
 * a cancelled request in an app. */
typedef int32_t (*tessera_abort_fn)(void* user);
/* Sets (fn NULL: removes) ctx's abort callback. NULL ctx is ignored. */
void tessera_context_set_abort(tessera_context* ctx, tessera_abort_fn fn, void* user);

/* The logits (n_vocab floats) of output row i of the last decode; -1 is the last row.
 * NULL when there is no such row (any other negative i, i >= tessera_get_n_logits, no
 * decode yet, NULL ctx), with the reason in tessera_last_error(). Valid until the next
 * decode or truncation on ctx. */
const float* tessera_get_logits(const tessera_context* ctx, int32_t i);
/* The number of logit rows the last decode produced (0 before the first, or for NULL). */
int32_t tessera_get_n_logits(const tessera_context* ctx);

typedef struct tessera_timings {
    double load_ms;        /* model load */
    double prompt_ms;      /* decodes of more than one token */
    int64_t prompt_tokens;
    double gen_ms;         /* decodes of one token */
    int64_t gen_tokens;
} tessera_timings;
/* Time spent in this context's decodes since it was made or its timings were reset, and
 * the model's load time. TESSERA_ERROR_INVALID_ARGUMENT for a NULL argument. */
tessera_status tessera_context_timings(const tessera_context* ctx, tessera_timings* out);
/* Zeroes the decode timings. NULL is ignored. */
void tessera_context_reset_timings(tessera_context* ctx);

/* Samplers: penalties over the recent tokens, then top-k, top-p and min-p on the
 * untempered distribution, then temperature and a seeded draw. temperature <= 0 is
 * greedy. The same seed and logits give the same tokens on every machine. A sampler
 * holds its random state and recent tokens: one thread at a time. */
typedef struct tessera_sampler tessera_sampler;
typedef struct tessera_sampler_params {
    float temperature;       /* 0.8 */
    int32_t top_k;           /* 40; <= 0 off */
    float top_p;             /* 0.95; >= 1 off */
    float min_p;             /* 0.05; <= 0 off */
    float repeat_penalty;    /* 1.0 (off) */
    int32_t repeat_last_n;   /* 64 */
    float presence_penalty;  /* 0 */
    float frequency_penalty; /* 0 */
    uint64_t seed;           /* 0 */
} tessera_sampler_params;

/* The defaults given beside each field above. */
tessera_sampler_params tessera_sampler_default_params(void);
/* Makes a sampler (params NULL: the defaults); *out owns it (free it with
 * tessera_sampler_free). TESSERA_ERROR_INVALID_ARGUMENT, naming the field, for a NULL
 * out, a float field that is NaN or infinite, repeat_penalty <= 0, top_p < 0, min_p > 1
 * or repeat_last_n < 0. */
tessera_status tessera_sampler_new(const tessera_sampler_params* params, tessera_sampler** out);
/* Releases the sampler. NULL is ignored. */
void tessera_sampler_free(tessera_sampler* sampler);
/* Picks a token from logit row i (-1: the last) of ctx's last decode (ctx is only read).
 * TESSERA_ERROR_INVALID_ARGUMENT for a NULL argument or when there is no such row. */
tessera_status tessera_sampler_sample(tessera_sampler* sampler, const tessera_context* ctx, int32_t i,
                                      int32_t* token);
/* Records a token of the sequence (prompt or generated) for the repetition penalties.
 * NULL is ignored. */
void tessera_sampler_accept(tessera_sampler* sampler, int32_t token);
/* Forgets the recorded tokens and re-seeds with params.seed. NULL is ignored. */
void tessera_sampler_reset(tessera_sampler* sampler);

/* ---- high-level generation ---------------------------------------------------------- */

/* Called on the generating thread with each piece of generated text (complete UTF-8; may
 * be empty while a character is unfinished; valid only during the call) and its token;
 * return 0 to stop generating. Text held back until the end (an unfinished character)
 * comes in one last call with token -1, whose return value is ignored. */
typedef int32_t (*tessera_token_fn)(const char* text, size_t len, int32_t token, void* user);

/* Tokenizes `prompt` (control-token text parsed as the context's parse_special says; BOS
 * as the model's metadata says, only when the sequence is empty), appends it to ctx's
 * sequence and generates up to n_predict tokens with `sampler`, streaming them to
 * `on_token` (may be NULL). Stops at an end-of-generation token (tessera_token_is_eog:
 * end of text, end of turn), when the callback returns 0, or when the context is full.
 * Afterwards ctx's sequence holds the prompt, every token handed to on_token and the
 * end-of-generation token if one ended it (all but a last token that found the context
 * full), so a second call continues the first: its prompt is appended after them, and an
 * empty prompt (len 0) continues generating where the first call stopped.
 * *n_generated (may be NULL) gets the number of tokens handed to on_token. A prompt that
 * does not fit gives TESSERA_ERROR_INVALID_ARGUMENT and leaves the sequence unchanged;
 * running out of memory gives TESSERA_ERROR_OUT_OF_MEMORY. */
tessera_status tessera_generate(tessera_context* ctx, tessera_sampler* sampler, const char* prompt, size_t len,
                                int32_t n_predict, tessera_token_fn on_token, void* user, int32_t* n_generated);

/* ---- model information ------------------------------------------------------------ */

/* general.architecture ("llama", ...) and general.name; "" when unknown, for a
 * vocab-only model or NULL. Never NULL; valid while the model lives. */
const char* tessera_model_architecture(const tessera_model* model);
const char* tessera_model_name(const tessera_model* model);
/* The training context length, layers, embedding size; 0 for a vocab-only model or NULL. */
int32_t tessera_model_n_ctx_train(const tessera_model* model);
int32_t tessera_model_n_layer(const tessera_model* model);
int32_t tessera_model_n_embd(const tessera_model* model);
/* Parameters and bytes of the weights; 0 for a vocab-only model or NULL. */
uint64_t tessera_model_n_params(const tessera_model* model);
uint64_t tessera_model_size(const tessera_model* model);
/* Milliseconds tessera_model_load took for this model (0 for NULL). */
double tessera_model_load_ms(const tessera_model* model);
/* Layers whose weights live on a GPU (0 for NULL, a vocab-only model or none), and the names
 * of the GPUs holding them, comma-separated in layer order ("CUDA0", "CUDA0,CUDA1"; "" when
 * none); tessera_model_gpu_layers: how many of them GPU i of that list holds (0 past its end). */
int32_t tessera_model_n_gpu_layers(const tessera_model* model);
const char* tessera_model_gpu(const tessera_model* model);
int32_t tessera_model_gpu_layers(const tessera_model* model, int32_t i);
/* Bytes of weights uploaded to the GPU (0 when none). */
uint64_t tessera_model_gpu_bytes(const tessera_model* model);
/* The copy bandwidth of the model's GPU in GB/s (bytes read plus written per second, the
 * median of five device-to-device copies of up to 1 GiB, measured now: it takes a moment);
 * 0 when the model has no GPU layers or the device could not be measured. */
double tessera_model_gpu_bandwidth(const tessera_model* model);
/* The GGUF file the model was loaded from, for metadata queries with the tessera_gguf_*
 * functions (NULL for NULL). Owned by the model: valid while it lives; never close it. */
const tessera_gguf* tessera_model_gguf(const tessera_model* model);

/* ---- chat templates --------------------------------------------------------------
 * The Jinja2 templates that models ship in tokenizer.chat_template, rendered as Python's
 * jinja2 renders them for Hugging Face's apply_chat_template (trim_blocks, lstrip_blocks,
 * raise_exception, strftime_now, a tojson that keeps non-ASCII characters). Errors name
 * the template line and column. Rendering shares no state: any thread, any time.
 */

typedef struct tessera_chat_message {
    const char* role;    /* "system", "user", "assistant", ... */
    const char* content; /* NULL renders as None */
} tessera_chat_message;

/* Renders `tmpl` with messages, add_generation_prompt, bos_token and eos_token (a NULL
 * token is left undefined). *out is a malloc'd NUL-terminated string the caller frees
 * with tessera_free. A template that raises gives TESSERA_ERROR_TEMPLATE_RAISED; a
 * template error or a NULL tmpl or out, TESSERA_ERROR_INVALID_ARGUMENT. */
tessera_status tessera_chat_render(const char* tmpl, const tessera_chat_message* messages, size_t n_messages,
                                   int32_t add_generation_prompt, const char* bos_token, const char* eos_token,
                                   char** out);
/* Renders `tmpl` with every top-level key of the JSON object `request_json` as a variable
 * (messages, tools, add_generation_prompt, ...); *out as for tessera_chat_render. A
 * template that raises gives TESSERA_ERROR_TEMPLATE_RAISED and its message in
 * tessera_last_error(); a template or JSON error gives TESSERA_ERROR_INVALID_ARGUMENT
 * with the line. */
tessera_status tessera_chat_render_json(const char* tmpl, const char* request_json, char** out);
/* Like tessera_chat_render_json, with each top-level key of the JSON object
 * `defaults_json` (NULL: none) that the request lacks added as a variable. */
tessera_status tessera_chat_render_json_defaults(const char* tmpl, const char* request_json, const char* defaults_json,
                                                 char** out);
/* Frees memory the library allocated for the caller (rendered text). NULL is ignored. */
void tessera_free(void* p);
/* Parses a conversation saved as JSON: either {"messages": [...]} or the array itself,
 * each message {"role": ..., "content": ...} with string values. *messages is an array
 * of *n messages (non-NULL even when *n is 0) that the caller frees with
 * tessera_chat_messages_free. Malformed JSON, another shape or a message without string
 * role and content gives TESSERA_ERROR_INVALID_ARGUMENT (naming the message), with
 * *messages NULL and *n 0; so does a NULL argument. */
tessera_status tessera_chat_parse_messages(const char* json, tessera_chat_message** messages, size_t* n);
/* Frees what tessera_chat_parse_messages returned; n is the count it gave. NULL is ignored. */
void tessera_chat_messages_free(tessera_chat_message* messages, size_t n);
/* Saves a conversation as {"messages": [{"role": ..., "content": ...}, ...]} (what
 * tessera_chat_parse_messages reads back) to path. The file is written under a temporary
 * name beside it, synced and renamed into place: a failure (disk full, file size limit, no
 * such folder) leaves an existing file as it was and no temporary behind, and gives
 * TESSERA_ERROR_IO naming the file. A message with a NULL role or content is
 * TESSERA_ERROR_INVALID_ARGUMENT. */
tessera_status tessera_chat_save_messages(const char* path, const tessera_chat_message* messages, size_t n);

/* ---- Placement plans (no model loaded) ----
 * What loading a model would put on each device, and how fast it would run there, from the
 * file's header and the machine's measured speeds (the first call on a machine measures the
 * CPU and the GPU for the file's weight types, a second or two, and keeps the results; later
 * calls only read them). `tessera fit` prints this. */
typedef struct tessera_fit_params {
    int32_t n_ctx;        /* KV cells to make room for; 0: the model's training context, at most 4096 */
    int32_t n_batch;      /* tokens per prompt step (default 512) */
    int32_t n_threads;    /* CPU threads; 0: all cores */
    int32_t n_gpu_layers; /* -1: the count n_gpu_layers = -1 would choose; else this count */
    const char* device;   /* the GPUs by name, as in tessera_model_params */
    int32_t split_mode;   /* as in tessera_model_params */
    const float* tensor_split;
    int32_t n_tensor_split;
    uint64_t gpu_mem;     /* as in tessera_model_params (each GPU's) */
    int32_t measure;      /* 1: measure the speeds not cached yet (default); 0: predict from the cache only */
} tessera_fit_params;

#define TESSERA_MAX_GPUS 16

/* One GPU's share of a plan. */
typedef struct tessera_fit_gpu {
    char name[32];
    int32_t n_layers;
    uint64_t budget;
    uint64_t weight_bytes, kv_bytes, compute_bytes;
} tessera_fit_gpu;

typedef struct tessera_fit_plan {
    int32_t n_layer;
    int32_t n_gpu_layers;  /* the last ones, with the output head */
    int32_t n_ctx;
    int32_t fits;          /* 1 when each GPU's share fits its budget */
    char gpu[64];          /* the GPUs' names, comma-separated; "" when there is none */
    uint64_t gpu_budget;   /* the gpu_* figures: sums over the GPUs */
    uint64_t gpu_weight_bytes, gpu_kv_bytes, gpu_compute_bytes;
    uint64_t cpu_weight_bytes, cpu_kv_bytes, cpu_compute_bytes;
    uint64_t cpu_pinned_bytes; /* page-locked copy of the CPU layers' weights that prompts stream to the GPU
                                  (held beside cpu_weight_bytes; 0 where the GPU has no such memory) */
    double pp_tokens_per_s; /* predicted prompt processing, n_batch-token steps */
    double tg_tokens_per_s; /* predicted generation from an empty context; 0 where a speed is unknown */
    int32_t n_gpus;         /* the GPUs in use (at most TESSERA_MAX_GPUS), each one's share in gpus */
    tessera_fit_gpu gpus[TESSERA_MAX_GPUS];
} tessera_fit_plan;

tessera_fit_params tessera_fit_default_params(void);
tessera_status tessera_fit(const char* path, const tessera_fit_params* params, tessera_fit_plan* plan);

/* ---- Model conversion ----
 * Writes a copy of a GGUF model with its matrices stored in another type: plain types
 * ("F32", "F16", "BF16"), legacy blocks ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"), k-quants
 * ("Q6_K") or the usual mixes ("Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M"),
 * which keep more bits for the output head and for the value and FFN-down projections of
 * some layers. Vectors (norms, biases) stay F32; metadata is copied. */

typedef struct tessera_quantize_params {
    const char* type;  /* one of the names above, any case; default "Q4_K_M" */
    int32_t n_threads; /* 0..TESSERA_MAX_THREADS; 0: all cores */
    int32_t pure;      /* 1: every matrix gets the base type (no mix rules) */
    tessera_progress_fn progress; /* optional: called after each tensor; return 0 to cancel */
    void* progress_user;
} tessera_quantize_params;

/* The defaults: type "Q4_K_M", all cores, mix rules on, no progress callback. */
tessera_quantize_params tessera_quantize_default_params(void);
/* Reads in_path and writes out_path (through a temporary file renamed into place: a
 * failure or a cancel leaves no partial output and never touches the input). params may
 * be NULL for the defaults. Errors: an unknown type or in_path == out_path
 * (TESSERA_ERROR_INVALID_ARGUMENT), a missing or malformed input (IO, BAD_FILE), a tensor
 * type that cannot be converted (UNSUPPORTED). Blocks until done; thread-safe. */
tessera_status tessera_quantize(const char* in_path, const char* out_path, const tessera_quantize_params* params);

#ifdef __cplusplus
}
#endif

#endif /* TESSERA_H */
