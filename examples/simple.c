/* simple.c: load a model, continue one prompt greedily, print the text, free.
 * usage: simple MODEL.gguf [PROMPT] */
#include <stdio.h>
#include <string.h>

#include "tessera.h"

static int fail(const char* what) {
    fprintf(stderr, "error: %s: %s\n", what, tessera_last_error());
    return 1;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.gguf [PROMPT]\n", argv[0]);
        return 2;
    }
    const char* prompt = argc > 2 ? argv[2] : "The capital of France is";

    tessera_model* model = NULL;
    if (tessera_model_load(argv[1], NULL, &model) != TESSERA_OK) return fail("load");

    int32_t tokens[512];
    int32_t n = 0;
    if (tessera_tokenize(model, prompt, strlen(prompt), 1, 0, tokens, 512, &n) != TESSERA_OK) return fail("tokenize");

    tessera_context_params cp = tessera_context_default_params();
    cp.n_ctx = 512;
    tessera_context* ctx = NULL;
    if (tessera_context_new(model, &cp, &ctx) != TESSERA_OK) return fail("context");

    tessera_sampler_params sp = tessera_sampler_default_params();
    sp.temperature = 0.0f; /* greedy */
    tessera_sampler* sampler = NULL;
    tessera_detokenizer* detok = NULL;
    if (tessera_sampler_new(&sp, &sampler) != TESSERA_OK) return fail("sampler");
    if (tessera_detokenizer_new(model, &detok) != TESSERA_OK) return fail("detokenizer");

    printf("%s", prompt);
    if (tessera_decode(ctx, tokens, n, 0) != TESSERA_OK) return fail("decode");
    for (int i = 0; i < 32; ++i) {
        int32_t next = 0;
        if (tessera_sampler_sample(sampler, ctx, -1, &next) != TESSERA_OK) return fail("sample");
        if (next == tessera_token_eos(model)) break;
        const char* text = NULL;
        size_t len = 0;
        if (tessera_detokenizer_push(detok, next, &text, &len) == TESSERA_OK) fwrite(text, 1, len, stdout);
        fflush(stdout);
        if (tessera_decode(ctx, &next, 1, 0) != TESSERA_OK) return fail("decode");
    }
    printf("\n");

    tessera_detokenizer_free(detok);
    tessera_sampler_free(sampler);
    tessera_context_free(ctx);
    tessera_model_free(model);
    return 0;
}
