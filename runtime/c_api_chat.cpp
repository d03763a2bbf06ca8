// Implements the chat-template part of include/tessera.h: render a template with a
// conversation given as C structs or as a JSON request.
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/c_api_internal.h"
#include "runtime/chat/json.h"
#include "runtime/chat/template.h"
#include "tensor/atomic_file.h"
#include "tessera.h"

using tessera::capi::guard;
using tessera::capi::set_error;

namespace {

namespace chat = tessera::chat;

// Copies `s` into a malloc'd NUL-terminated buffer for the caller.
char* to_c_string(const std::string& s) {
    char* p = static_cast<char*>(std::malloc(s.size() + 1));
    if (!p) throw std::bad_alloc();
    std::memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
    return p;
}

// Renders and hands the text over; raise_exception() becomes its own status.
tessera_status render_to(const char* tmpl, const chat::Value& variables, char** out) {
    try {
        const std::string text = chat::ChatTemplate(tmpl).render(variables);
        *out = to_c_string(text);
        return TESSERA_OK;
    } catch (const chat::TemplateRaised& e) {
        return set_error(TESSERA_ERROR_TEMPLATE_RAISED, e.what());
    }
}

chat::Value parse_object(const char* json, const char* what) {
    chat::Value v = chat::json::parse(json);
    if (!v.is_dict()) throw tessera::Error(std::string(what) + " must be a JSON object");
    return v;
}

}  // namespace

extern "C" {

tessera_status tessera_chat_render(const char* tmpl, const tessera_chat_message* messages, size_t n_messages,
                                   int32_t add_generation_prompt, const char* bos_token, const char* eos_token,
                                   char** out) {
    if (!out) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_chat_render: out is NULL");
    *out = nullptr;
    if (!tmpl) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_chat_render: tmpl is NULL");
    if (!messages && n_messages > 0)
        return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_chat_render: messages is NULL");
    tessera_status status = TESSERA_OK;
    const tessera_status guarded = guard([&] {
        chat::Value list = chat::Value::list();
        for (size_t i = 0; i < n_messages; ++i) {
            chat::Value m = chat::Value::dict();
            m.as_dict().set("role", messages[i].role ? chat::Value::string(messages[i].role) : chat::Value::none());
            m.as_dict().set("content",
                            messages[i].content ? chat::Value::string(messages[i].content) : chat::Value::none());
            list.items().push_back(std::move(m));
        }
        chat::Value vars = chat::Value::dict();
        vars.as_dict().set("messages", list);
        vars.as_dict().set("add_generation_prompt", chat::Value::boolean(add_generation_prompt != 0));
        if (bos_token) vars.as_dict().set("bos_token", chat::Value::string(bos_token));
        if (eos_token) vars.as_dict().set("eos_token", chat::Value::string(eos_token));
        status = render_to(tmpl, vars, out);
    });
    return guarded != TESSERA_OK ? guarded : status;
}

tessera_status tessera_chat_render_json_defaults(const char* tmpl, const char* request_json, const char* defaults_json,
                                                 char** out) {
    if (!out) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_chat_render_json: out is NULL");
    *out = nullptr;
    if (!tmpl) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_chat_render_json: tmpl is NULL");
    if (!request_json)
        return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_chat_render_json: request_json is NULL");
    tessera_status status = TESSERA_OK;
    const tessera_status guarded = guard([&] {
        chat::Value vars = parse_object(request_json, "the request");
        if (defaults_json) {
            const chat::Value defaults = parse_object(defaults_json, "the defaults");
            for (const auto& [k, v] : defaults.as_dict().entries())
                if (!vars.as_dict().find(k)) vars.as_dict().set(k, v);
        }
        status = render_to(tmpl, vars, out);
    });
    return guarded != TESSERA_OK ? guarded : status;
}

tessera_status tessera_chat_render_json(const char* tmpl, const char* request_json, char** out) {
    return tessera_chat_render_json_defaults(tmpl, request_json, nullptr, out);
}

void tessera_free(void* p) { std::free(p); }

tessera_status tessera_chat_parse_messages(const char* json, tessera_chat_message** messages, size_t* n) {
    if (!messages || !n) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_chat_parse_messages: null argument");
    *messages = nullptr;
    *n = 0;
    if (!json) return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_chat_parse_messages: json is NULL");
    return guard([&] {
        chat::Value root = chat::json::parse(json);
        const chat::Value* list = &root;
        if (root.is_dict()) {
            list = root.as_dict().find("messages");
            if (!list) throw tessera::Error("the JSON object has no \"messages\" key");
        }
        if (!list->is_list()) throw tessera::Error("\"messages\" must be a JSON array");
        const auto& items = list->items();
        // Every message is checked before anything is allocated for the caller.
        for (size_t i = 0; i < items.size(); ++i) {
            const chat::Value* role = items[i].is_dict() ? items[i].as_dict().find("role") : nullptr;
            const chat::Value* content = items[i].is_dict() ? items[i].as_dict().find("content") : nullptr;
            if (!role || !role->is_string() || !content || !content->is_string())
                throw tessera::Error("message " + std::to_string(i) + " needs string \"role\" and \"content\"");
        }
        auto* out = static_cast<tessera_chat_message*>(
            std::calloc(items.size() ? items.size() : 1, sizeof(tessera_chat_message)));
        if (!out) throw std::bad_alloc();
        size_t done = 0;
        try {
            for (; done < items.size(); ++done) {
                out[done].role = to_c_string(items[done].as_dict().find("role")->as_string());
                out[done].content = to_c_string(items[done].as_dict().find("content")->as_string());
            }
        } catch (...) {
            tessera_chat_messages_free(out, done + 1);
            throw;
        }
        *messages = out;
        *n = items.size();
    });
}

void tessera_chat_messages_free(tessera_chat_message* messages, size_t n) {
    if (!messages) return;
    for (size_t i = 0; i < n; ++i) {
        std::free(const_cast<char*>(messages[i].role));
        std::free(const_cast<char*>(messages[i].content));
    }
    std::free(messages);
}

tessera_status tessera_chat_save_messages(const char* path, const tessera_chat_message* messages, size_t n) {
    if (!path || (!messages && n > 0))
        return set_error(TESSERA_ERROR_INVALID_ARGUMENT, "tessera_chat_save_messages: null argument");
    return guard([&] {
        std::string json = "{\"messages\": [";
        for (size_t i = 0; i < n; ++i) {
            if (!messages[i].role || !messages[i].content)
                throw tessera::Error("tessera_chat_save_messages: message " + std::to_string(i) +
                                     " has a NULL role or content");
            json += i ? ", {\"role\": " : "{\"role\": ";
            chat::json::append_quoted(json, messages[i].role, false);
            json += ", \"content\": ";
            chat::json::append_quoted(json, messages[i].content, false);
            json += "}";
        }
        json += "]}\n";
        tessera::AtomicFile out(path);
        out.write(json);
        out.commit();
    });
}

}  // extern "C"
