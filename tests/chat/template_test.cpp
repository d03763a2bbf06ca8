// Unit tests of the chat-template language. The expected text of every case in kCases is
// what Python's jinja2 renders for the same template and variables, configured as Hugging
// Face's apply_chat_template configures it (trim_blocks, lstrip_blocks, loop controls,
// a tojson that keeps non-ASCII characters); the other tests cover errors and limits.
#include <doctest/doctest.h>

#include <random>
#include <string>
#include <string_view>

#include "runtime/chat/json.h"
#include "runtime/chat/template.h"

namespace chat = tessera::chat;

namespace {

struct Case {
    const char* tmpl;
    const char* vars;  // a JSON object
    const char* expected;
};

const Case kCases[] =
    {
        // literals and printing
        {R"~({{ 1 }}|{{ -3 }}|{{ 2.5 }}|{{ 1.0 }}|{{ 1e20 }}|{{ 1e15 }}|{{ 0.0001 }}|{{ 0.00001 }}|{{ 1/3 }}|{{ -0.0 }}|{{ 1.5e3 }}|{{ 2E-2 }})~",
         R"~({})~", R"~(1|-3|2.5|1.0|1e+20|1000000000000000.0|0.0001|1e-05|0.3333333333333333|-0.0|1500.0|0.02)~"},
        {R"~({{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 12345678901234567 }})~", R"~({})~",
         R"~(31 15 5 1000 12345678901234567)~"},
        {R"~({{ 'a\tb\u00e9\x41\101' }}|{{ "x'y" }}|{{ 'multi
line' }}|{{ 'adj' "acent" }}|{{ 'back\\slash' }}|{{ '\q' }})~",
         R"~({})~",
         R"~(a	béAA|x'y|multi
line|adjacent|back\slash|\q)~"},
        {R"~({{ none }} {{ None }} {{ True }} {{ false }} {{ n }} {{ t }}|{{ missing }}|{{ e }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(None None True False None True||)~"},
        {R"~({{ [1, 'a', none, true, 1.5, [2], {'k': 'v'}, (1,)] }} {{ ('a',) }} {{ () }} {{ {} }} {{ [1, 2, ] }})~",
         R"~({})~", R"~([1, 'a', None, True, 1.5, [2], {'k': 'v'}, (1,)] ('a',) () {} [1, 2])~"},
        {R"~({{ ['it\'s', "q\"", 'both\'"', 'a\nb', '\x01', 'é', '\u00a0'] }})~", R"~({})~",
         R"~(["it's", 'q"', 'both\'"', 'a\nb', '\x01', 'é', '\xa0'])~"},
        {R"~({{ d }} {{ l }} {{ M }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld", "M": {"k": [1, {"z": null}]}})~",
         R"~({'b': 2, 'a': 1, 'C': 3} [3, 1, 2] {'k': [1, {'z': None}]})~"},
        // arithmetic
        {R"~({{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 2 ** -1 }})~",
         R"~({})~", R"~(7 9 3 -4 -2 2 1024 64 4 0.5)~"},
        {R"~({{ 7 / 2 }} {{ 10 / 5 }} {{ 1 - 0.1 }} {{ 3 * 1.0 }} {{ 0.1 + 0.2 }} {{ 10 // 3.0 }} {{ -7 % 3.0 }} {{ 7.5 // 2 }} {{ true + 1 }} {{ true * 3.0 }})~",
         R"~({})~", R"~(3.5 2.0 0.9 3.0 0.30000000000000004 3.0 2.0 3.0 2 3.0)~"},
        {R"~({{ 'a' ~ 1 ~ none ~ true ~ missing }} {{ 'ab' * 3 }} {{ 3 * 'ab' }} {{ [1] * 3 }} {{ [1,2] + [3] }} {{ (1,2) + (3,) }} {{ 'x' * 0 }})~",
         R"~({})~", R"~(a1NoneTrue ababab ababab [1, 1, 1] [1, 2, 3] (1, 2, 3) )~"},
        {R"~({{ '%s and %d' % ('a', 3) }} {{ '%05.2f' % 3.14159 }} {{ '%-4s|' % 'ab' }} {{ '%x %o %%' % (255, 8) }} {{ '%(k)s' % {'k': 1} }})~",
         R"~({})~", R"~(a and 3 03.14 ab  | ff 10 % 1)~"},
        {R"~({{ -x }} {{ +x }} {{ -f }} {{ x - 7 }} {{ -x|abs }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(-5 5 -2.5 -2 5)~"},
        // comparisons and logic
        {R"~({{ x > 3 and x < 10 }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 5 }} {{ not x }} {{ not n }} {{ x or 'z' }} {{ n or 'z' }} {{ e and 'z' }} {{ t and x }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(True True False False True 5 z  5)~"},
        {R"~({{ 'a' == 'a' }} {{ [1,2] == [1,2] }} {{ {'a':1} == {'a':1} }} {{ 1 == 1.0 }} {{ 1 == true }} {{ 'a' != 'b' }} {{ none == none }} {{ missing == none }})~",
         R"~({})~", R"~(True True True True True True True False)~"},
        {R"~({{ 'abc' < 'abd' }} {{ [1, 2] < [1, 3] }} {{ 2 >= 2.0 }} {{ 'B' < 'a' }} {{ 3 <= 2 }})~", R"~({})~",
         R"~(True True True True False)~"},
        {R"~({{ 'a' in 'cat' }} {{ 1 in l }} {{ 'a' in d }} {{ 'z' not in d }} {{ 5 not in l }} {{ 'x' in missing }} {{ (1, 2) in [(1, 2)] }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(True True True True True False True)~"},
        {R"~({{ 1 if t else 2 }} {{ 1 if n else 2 }} [{{ 'yes' if n }}] {{ 'a' if false else 'b' if false else 'c' }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(1 2 [] c)~"},
        // whitespace control
        {R"~(a
  {% if true %}
    yes
  {% endif %}
b
)~",
         R"~({})~",
         R"~(a
    yes
b)~"},
        {R"~(a  {%- if true -%}  yes  {%- endif -%}  b)~", R"~({})~", R"~(ayesb)~"},
        {R"~({{- '  x  ' -}}

{{ 'y' }}
{# comment #}
z)~",
         R"~({})~",
         R"~(  x  y
z)~"},
        {R"~(  {# c #}
  {{ 'v' }}
  {%+ if true %}p{% endif %})~",
         R"~({})~",
         R"~(  v
  p)~"},
        {R"~(<ul>
    {% for i in [1, 2] %}
        <li>{{ i }}</li>
    {% endfor %}
</ul>)~",
         R"~({})~",
         R"~(<ul>
        <li>1</li>
        <li>2</li>
</ul>)~"},
        {R"~(x {% if true %} y {% endif %} z)~", R"~({})~", R"~(x  y  z)~"},
        {R"~(line
	{% if true %}tab{% endif %}
  {{ 'expr' }}  {% if true %}A{% endif %}
)~",
         R"~({})~",
         R"~(line
tab  expr  A)~"},
        {R"~({% if true %}a{% endif %}

{% if true %}b{% endif %}
c
)~",
         R"~({})~",
         R"~(a
bc)~"},
        {R"~({#- c -#}   x   {#+ keep +#}  y
  {# only #}
z)~",
         R"~({})~",
         R"~(x     y
z)~"},
        {R"~({% for i in range(3) %}
  {{- i }}
{%- endfor %})~",
         R"~({})~", R"~(012)~"},
        {R"~({{ x }}   {% if true %}y{% endif %}
  {{ x }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(5   y  5)~"},
        {R"~(start
    {%+ if true %}kept{% endif %}
end

)~",
         R"~({})~",
         R"~(start
    keptend
)~"},
        {R"~(é  {% if true %}x{% endif %}
  {% if true %}nbsp{% endif %})~",
         R"~({})~", R"~(é  xnbsp)~"},
        {R"~(a　{%- if true %}ideographic{% endif %})~", R"~({})~", R"~(aideographic)~"},
        // raw blocks
        {R"~({% raw %}{{ not rendered }}{% if %}{% endraw %} and {{ 'x' }})~", R"~({})~",
         R"~({{ not rendered }}{% if %} and x)~"},
        {R"~(a
  {%- raw -%}  {{ x }}  {%- endraw -%}  
b)~",
         R"~({})~", R"~(a{{ x }}b)~"},
        {R"~(a
   {% raw %}
  raw {{ }}
   {% endraw %}
b)~",
         R"~({})~",
         R"~(a

  raw {{ }}
b)~"},
        // if
        {R"~({% if x > 10 %}big{% elif x > 3 %}mid{% elif x > 0 %}small{% else %}neg{% endif %})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(mid)~"},
        {R"~({% if n %}a{% elif e %}b{% else %}c{% endif %}{% if l %}L{% endif %}{% if d %}D{% endif %}{% if 0.0 %}F{% endif %}{% if [] %}E{% endif %})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(cLD)~"},
        // for
        {R"~({% for m in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }} {% endfor %})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(1032TrueFalse3 2121FalseFalse3 3210FalseTrue3 )~"},
        {R"~({% for k, v in d.items() %}{{ k }}={{ v }}{{ ',' if not loop.last }}{% endfor %}|{% for k in d %}{{ k }}{% endfor %}|{% for c in 'hé' %}[{{ c }}]{% endfor %})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(b=2,a=1,C=3|baC|[h][é])~"},
        {R"~({% for i in [] %}{{ i }}{% else %}empty{% endfor %}|{% for i in missing %}x{% else %}none{% endfor %})~",
         R"~({})~", R"~(empty|none)~"},
        {R"~({% for i in range(10) if i is odd %}{{ i }}:{{ loop.index }}/{{ loop.length }} {% endfor %})~", R"~({})~",
         R"~(1:1/5 3:2/5 5:3/5 7:4/5 9:5/5 )~"},
        {R"~({% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %})~",
         R"~({})~", R"~(02)~"},
        {R"~({% for a, b in [[1, 2], (3, 4)] %}{{ a }}{{ b }}{% endfor %})~", R"~({})~", R"~(1234)~"},
        {R"~({% for m in l %}{{ loop.previtem is defined }}/{{ loop.nextitem }}/{{ loop.cycle('a', 'b') }} {% endfor %})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(False/1/a True/2/b True//a )~"},
        {R"~({% for i in [1, 2] %}{% set outer = loop %}{% for j in [3] %}{{ outer.index }}-{{ loop.index }} {% endfor %}{% endfor %})~",
         R"~({})~", R"~(1-1 2-1 )~"},
        // set and scoping
        {R"~({% set a = 1 %}{% set b, c = 2, 3 %}{% set t = 4, 5 %}{{ a }}{{ b }}{{ c }}{{ t }})~", R"~({})~",
         R"~(123(4, 5))~"},
        {R"~({% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}]{% set y | upper | replace('A', '4') %}abc{% endset %}[{{ y }}])~",
         R"~({})~", R"~([block 2][4BC])~"},
        {R"~({% for i in range(3) %}{% if i == 0 %}{% set x = 'a' %}{% endif %}[{{ x }}]{% endfor %}[{{ x }}])~",
         R"~({})~", R"~([a][][][])~"},
        {R"~({% set x = 1 %}{% for i in range(2) %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }})~", R"~({})~",
         R"~(12121)~"},
        {R"~({% if true %}{% set leak = 1 %}{% endif %}{{ leak }}|{% for i in [1] %}{% set noleak = 1 %}{% endfor %}[{{ noleak }}])~",
         R"~({})~", R"~(1|[])~"},
        {R"~({% set ns = namespace(a=1, found=false) %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% if i == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.a }} {{ ns.found }})~",
         R"~({})~", R"~(4 True)~"},
        {R"~({% set ns = namespace() %}{% set ns.x = 'late' %}{{ ns.x }} {{ namespace({'k': 1}, j=2).k }})~", R"~({})~",
         R"~(late 1)~"},
        {R"~({% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}{% set messages = messages[1:] %}{% endif %}{{ sys }}|{{ messages|length }})~",
         R"~({"messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi é"}, {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [1, 2.5, null, true]}}}]}]})~",
         R"~(Sys|2)~"},
        {R"~({% with a = 5, b = 6 %}{{ a + b }}{% endwith %}[{{ a }}])~", R"~({})~", R"~(11[])~"},
        // macros
        {R"~({% macro f(a, b='B', c=none) %}<{{ a }}|{{ b }}|{{ c }}>{% endmacro %}{{ f(1) }}{{ f(1, 2) }}{{ f(1, c=3) }}{{ f() }})~",
         R"~({})~", R"~(<1|B|None><1|2|None><1|B|3><|B|None>)~"},
        {R"~({% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }})~", R"~({})~",
         R"~(1(2, 3){'k': 4})~"},
        {R"~({% macro m(a, b=a * 2) %}{{ b }}{% endmacro %}{{ m(3) }})~", R"~({})~", R"~(6)~"},
        {R"~({% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(5) }})~", R"~({})~",
         R"~(54321)~"},
        {R"~({% set g = 'global' %}{% macro m() %}{{ g }}{% set g = 'local' %}{{ g }}{% endmacro %}{{ m() }}{{ g }})~",
         R"~({})~", R"~(globallocalglobal)~"},
        {R"~({% macro uses() %}{{ helper() }}{% endmacro %}{% macro helper() %}h{% endmacro %}{{ uses() + '!' }})~",
         R"~({})~", R"~(h!)~"},
        {R"~({% macro m() %}[{{ caller() }}]{% endmacro %}{% call m() %}inside{% endcall %})~", R"~({})~",
         R"~([inside])~"},
        {R"~({% macro m(x) %}[{{ caller(x * 2) }}]{% endmacro %}{% call(v) m(4) %}got {{ v }}{% endcall %})~",
         R"~({})~", R"~([got 8])~"},
        // other blocks
        {R"~({% filter upper %}hello {{ 'x' }}{% endfilter %}|{% filter replace('a', 'o') | title %}banana{% endfilter %})~",
         R"~({})~", R"~(HELLO X|Bonono)~"},
        {R"~({% generation %}gen {{ 1 }}{% endgeneration %})~", R"~({})~", R"~(gen 1)~"},
        {R"~({% print 'printed' %})~", R"~({})~", R"~(printed)~"},
        // access
        {R"~({{ messages[0]['role'] }} {{ messages[0].role }} {{ messages.0.role }} [{{ messages[5] }}] {{ messages[-1].tool_calls[0].function.name }})~",
         R"~({"messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi é"}, {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [1, 2.5, null, true]}}}]}]})~",
         R"~(system system system [] f)~"},
        {R"~({{ 'abcdef'[1:] }} {{ 'abcdef'[::-1] }} {{ 'abcdef'[-2:] }} {{ l[::-1] }} {{ l[1] }} {{ l[-1] }} [{{ 'abc'[5] }}] {{ l[1:2] }} {{ 'abcdef'[1:5:2] }} {{ u[1] }} {{ u[::-1] }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(bcdef fedcba ef [2, 1, 3] 1 2 [] [1] bd é dlröw olléh)~"},
        {R"~({{ [1, 2, 3][5:] }} {{ (1, 2, 3)[::2] }} {{ 'abc'[-10:10] }} {{ [1, 2, 3][:-1] }})~", R"~({})~",
         R"~([] (1, 3) abc [1, 2])~"},
        {R"~({{ d['a'] }} {{ d.a }} [{{ d['zz'] }}] [{{ d.zz }}] {{ d.get('zz', 9) }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(1 1 [] [] 9)~"},
        // string methods
        {R"~({{ 'a b c'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a b c'.rsplit(' ', 1) }} {{ ' a  b '.split(None, 1) }} {{ 'a\nb\r\nc'.splitlines() }})~",
         R"~({})~", R"~(['a', 'b', 'c'] ['a', 'b', '', 'c'] ['a', 'b,c'] ['a b', 'c'] ['a', 'b '] ['a', 'b', 'c'])~"},
        {R"~([{{ '  x  '.strip() }}] [{{ 'xxhixx'.strip('x') }}] [{{ '  x '.lstrip() }}] [{{ ' x  '.rstrip() }}] {{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('lo', 'x')) }} {{ 'hello'.startswith('l', 2) }})~",
         R"~({})~", R"~([x] [hi] [x ] [ x] True True True)~"},
        {R"~({{ 'Hello'.replace('l', 'L') }} {{ 'Hello'.replace('l', 'L', 1) }} {{ 'Hello'.find('l') }} {{ 'Hello'.rfind('l') }} {{ 'Hello'.find('z') }} {{ 'Hello'.count('l') }} {{ 'héllo'.find('l') }})~",
         R"~({})~", R"~(HeLLo HeLlo 2 3 -1 2 2)~"},
        {R"~({{ 'hello world'.title() }} {{ "they're 1st".title() }} {{ 'HeLLo'.lower() }} {{ 'abc'.upper() }} {{ 'x'.capitalize() }} {{ 'aB'.swapcase() }} {{ 'straße'.upper() }} {{ 'ÀÉÎ'.lower() }})~",
         R"~({})~", R"~(Hello World They'Re 1St hello ABC X Ab STRASSE àéî)~"},
        {R"~({{ '-'.join(['a', 'b']) }} {{ '{} {}'.format(1, 'b') }} {{ '{0}{name}'.format(1, name='n') }} {{ 'abc'.zfill(5) }} {{ 'ab'.ljust(4, '*') }}| {{ 'ab'.center(6, '.') }} {{ 'a b'.partition(' ') }} {{ 'abc'.removeprefix('a') }})~",
         R"~({})~", R"~(a-b 1 b 1n 00abc ab**| ..ab.. ('a', ' ', 'b') bc)~"},
        {R"~({{ 'A1'.isalnum() }} {{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ '  '.isspace() }} {{ 'ab'.islower() }} {{ 'AB'.isupper() }})~",
         R"~({})~", R"~(True True True True True True)~"},
        // dict and list methods
        {R"~({{ d.keys()|list }} {{ d.values()|list }} {{ d.items()|list }} {{ d.get('a') }} {{ d.get('z') }} {{ d.copy() }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(['b', 'a', 'C'] [2, 1, 3] [('b', 2), ('a', 1), ('C', 3)] 1 None {'b': 2, 'a': 1, 'C': 3})~"},
        {R"~({{ l.index(2) }} {{ l.count(1) }} {{ (1, 2, 1).count(1) }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(2 1 2)~"},
        // filters: strings
        {R"~([{{ s|trim }}] [{{ s|upper }}] [{{ s|lower }}] [{{ s|title }}] [{{ 'hello WORLD'|capitalize }}] {{ s|length }} {{ u|length }} {{ u|upper }} {{ 'xhix'|trim('x') }})~", R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~([Hello World] [  HELLO WORLD  ] [  hello world  ] [  Hello World  ] [Hello world] 15 11 HÉLLO WÖRLD hi)~"},
        {R"~({{ 'a-b c(d'|title }} {{ "it's mr. o'neil"|title }} {{ 'Hello World'|replace('o', '0', 1) }} {{ 'aaa'|replace('a', 'b') }} {{ 'x'|replace('', '-') }})~",
         R"~({})~", R"~(A-B C(D It's Mr. O'neil Hell0 World bbb -x-)~"},
        {R"~([{{ 'text'|center(10) }}] [{{ 'line1
line2

line4'|indent(2) }}] [{{ 'a
b'|indent(2, true) }}] [{{ 'a

b'|indent(2, blank=true) }}] [{{ 'a
b'|indent('> ', first=true) }}])~",
         R"~({})~",
         R"~([   text   ] [line1
  line2

  line4] [  a
  b] [a
  
  b] [> a
> b])~"},
        {R"~({{ 'one two  three'|wordcount }} {{ 'The quick brown fox jumps'|truncate(10) }} {{ 'short'|truncate(10) }} {{ 'The quick brown fox'|truncate(9, true) }})~",
         R"~({})~", R"~(3 The... short The qu...)~"},
        {R"~({{ '%s-%s'|format('a', 1) }} {{ 5|string }} {{ 'abc'|list }} {{ 'abc'|reverse }} {{ 'ab'|first }}{{ 'ab'|last }})~",
         R"~({})~", R"~(a-1 5 ['a', 'b', 'c'] cba ab)~"},
        // filters: sequences
        {R"~({{ l|sort }} {{ l|sort(reverse=true) }} {{ l|first }} {{ l|last }} {{ l|max }} {{ l|min }} {{ l|sum }} {{ l|reverse|list }} {{ l|length }} {{ l|count }} {{ l|join(', ') }} {{ l|join }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~([1, 2, 3] [3, 2, 1] 3 2 3 1 6 [2, 1, 3] 3 3 3, 1, 2 312)~"},
        {R"~({{ ['B', 'a', 'C']|sort }} {{ ['B', 'a', 'C']|sort(case_sensitive=true) }} {{ ['a', 'B', 'a', 'b']|unique|list }} {{ ['a', 'B']|max }} {{ [1, 2, 2, 3, 1]|unique|list }})~",
         R"~({})~", R"~(['a', 'B', 'C'] ['B', 'C', 'a'] ['a', 'B'] B [1, 2, 3])~"},
        {R"~({{ [{'n': 'b', 'v': 2}, {'n': 'a', 'v': 1}]|sort(attribute='n')|map(attribute='v')|list }} {{ [{'a': {'b': 3}}]|map(attribute='a.b')|list }} {{ [{'x': 1}, {}]|map(attribute='x', default=0)|list }})~",
         R"~({})~", R"~([1, 2] [3] [1, 0])~"},
        {R"~({{ [{'v': 2}, {'v': 5}]|max(attribute='v') }} {{ [1.5, 2]|sum }} {{ [[1], [2]]|sum(start=[]) }} {{ [{'p': 2}, {'p': 3}]|sum(attribute='p') }} {{ [1, 2, 3, 4, 5]|batch(2)|list }} {{ [1, 2, 3]|batch(2, 0)|list }})~",
         R"~({})~", R"~({'v': 5} 3.5 [1, 2] 5 [[1, 2], [3, 4], [5]] [[1, 2], [3, 0]])~"},
        {R"~({{ messages|selectattr('role', 'equalto', 'user')|list }} {{ messages|rejectattr('role', 'equalto', 'user')|map(attribute='role')|list }} {{ messages|selectattr('content')|list|length }} {{ messages|selectattr('content', 'none')|list|length }})~",
         R"~({"messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi é"}, {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [1, 2.5, null, true]}}}]}]})~",
         R"~([{'role': 'user', 'content': 'Hi é'}] ['system', 'assistant'] 2 1)~"},
        {R"~({{ [1, 2, 3]|select('odd')|list }} {{ [1, 2, 3]|reject('odd')|list }} {{ [0, 1, '', 'a']|select|list }} {{ [3, 1, 2]|select('gt', 1)|list }} {{ [3, 1, 2]|select('in', [1, 3])|list }})~",
         R"~({})~", R"~([1, 3] [2] [1, 'a'] [3, 2] [3, 1])~"},
        {R"~({{ messages|map(attribute='role')|join(',') }} {{ l|map('string')|join('-') }} {{ ['a', 'b']|map('upper')|list }} {{ ['a b']|map('replace', ' ', '_')|list }})~",
         R"~({"messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi é"}, {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [1, 2.5, null, true]}}}]}], "x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(system,user,assistant 3-1-2 ['A', 'B'] ['a_b'])~"},
        {R"~({% if []|select('odd') %}generator{% endif %} {% if [] %}list{% endif %} {{ []|first is defined }})~",
         R"~({})~", R"~(generator  False)~"},
        // filters: dicts
        {R"~({{ d|dictsort }} {{ d|dictsort(true) }} {{ d|dictsort(by='value', reverse=true) }} {{ d|items|list }} {{ d|list }} {{ d|length }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~([('a', 1), ('b', 2), ('C', 3)] [('C', 3), ('a', 1), ('b', 2)] [('C', 3), ('b', 2), ('a', 1)] [('b', 2), ('a', 1), ('C', 3)] ['b', 'a', 'C'] 3)~"},
        // filters: numbers
        {R"~({{ 3.7|int }} {{ '42'|int }} {{ ' 42 '|int }} {{ '4.5'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '0x1A'|int(base=16) }} {{ true|int }})~",
         R"~({})~", R"~(3 42 42 4 0 7 26 1)~"},
        {R"~({{ '3.5'|float }} {{ 2|float }} {{ 'x'|float }} {{ '1e3'|float }} {{ -3|abs }} {{ -2.5|abs }})~",
         R"~({})~", R"~(3.5 2.0 0.0 1000.0 3 2.5)~"},
        {R"~({{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(method='floor') }} {{ 7|round }} {{ -1.5|round }})~",
         R"~({})~", R"~(2.57 2.0 4.0 2.67 3.0 2.0 7 -2.0)~"},
        // filters: default and json
        {R"~({{ n|default('dflt') }} {{ missing|default('dflt') }} [{{ e|default('dflt') }}] {{ e|default('dflt', true) }} {{ missing|d('x') }} {{ missing|default }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(None dflt [] dflt x )~"},
        {R"~({{ messages[2].tool_calls[0].function.arguments|tojson }} {{ messages[2].tool_calls[0].function.arguments|tojson(indent=2) }})~",
         R"~({"messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi é"}, {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [1, 2.5, null, true]}}}]}]})~",
         R"~({"a": 1, "b": [1, 2.5, null, true]} {
  "a": 1,
  "b": [
    1,
    2.5,
    null,
    true
  ]
})~"},
        {R"~({{ {'a': 'é"\n', 'b': [1, 2.0, 1e20, none, true]}|tojson }} {{ []|tojson(indent=2) }} {{ {}|tojson }} {{ d|tojson(sort_keys=true) }} {{ (1, 2)|tojson }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~({"a": "é\"\n", "b": [1, 2.0, 1e+20, null, true]} [] {} {"C": 3, "a": 1, "b": 2} [1, 2])~"},
        {R"~({{ 'x'|tojson(indent=' ') }} {{ {'a': [1, {'b': []}]}|tojson(indent=3) }} {{ {'a': 1, 'b': 2}|tojson(separators=(',', ':')) }} {{ 'é😀'|tojson(ensure_ascii=true) }} {{ '\u0001\u007f\b\f\r\t<>&\''|tojson }})~",
         R"~({})~",
         R"~("x" {
   "a": [
      1,
      {
         "b": []
      }
   ]
} {"a":1,"b":2} "\u00e9\ud83d\ude00" "\u0001\b\f\r\t<>&'")~"},
        // filters: markup
        {R"~({{ '<a & "b">'|e }} {{ '<b>'|escape|escape }} {{ '<b>'|forceescape }} {{ '<b>'|safe }})~", R"~({})~",
         R"~(&lt;a &amp; &#34;b&#34;&gt; &lt;b&gt; &lt;b&gt; <b>)~"},
        {R"~({{ 'a'|safe + '<' }}|{{ '<' + 'a'|safe }}|{{ ('<'|e) ~ '<' }}|{{ ('x'|safe)|upper + '<' }}|{{ ('%s'|safe) % '<' }}|{{ ('a'|safe).join(['<', '>']) }}|{{ ['<', 'a'|safe]|join }})~",
         R"~({})~", R"~(a&lt;|&lt;a|&lt;<|X&lt;|&lt;|&lt;a&gt;|<a)~"},
        // tests
        {
            R"~({{ x is number }} {{ f is float }} {{ x is integer }} {{ t is boolean }} {{ t is integer }} {{ t is number }} {{ s is string }} {{ d is mapping }} {{ l is mapping }})~", R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
            R"~(True True True True False True True True False)~"},
        {R"~({{ l is iterable }} {{ s is iterable }} {{ x is iterable }} {{ missing is iterable }} {{ l is sequence }} {{ d is sequence }} {{ x is sequence }} {{ range is callable }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(True True False True True True False True)~"},
        {R"~({{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ t is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }} {{ none is none }} {{ 0 is none }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(True True True False True False True False True False)~"},
        {R"~({{ 'a' is equalto 'a' }} {{ 1 is eq 1.0 }} {{ 2 is ne 3 }} {{ 2 is lt 3 }} {{ 2 is greaterthan 3 }} {{ 2 is ge 2 }} {{ 2 is in [1, 2] }} {{ x is sameas 5 }} {{ none is sameas none }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(True True True True False True True True True)~"},
        {R"~({{ x is defined }} {{ zz is defined }} {{ zz is undefined }} {{ x is not defined }} {{ n is not none }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ 'upper' is filter }} {{ 'odd' is test }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(True False True False False True True True True)~"},
        // globals
        {R"~({{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ range(5, 0, -2)|list }} {{ range(0)|list }} {{ dict(a=1, b=2) }} {{ dict({'x': 1}, y=2) }})~",
         R"~({})~", R"~([0, 1, 2] [1, 4, 7] [5, 3, 1] [] {'a': 1, 'b': 2} {'x': 1, 'y': 2})~"},
        {R"~({% set j = joiner(', ') %}{% for i in [1, 2, 3] %}{{ j() }}{{ i }}{% endfor %})~", R"~({})~",
         R"~(1, 2, 3)~"},
        // undefined
        {R"~([{{ zz }}|{{ zz|length }}|{{ zz|list }}|{{ zz|join }}|{{ zz|string }}|{{ zz|trim }}|{{ zz|upper }}|{{ zz ~ 'x' }}|{{ zz|items|list }}])~",
         R"~({})~", R"~([|0|[]|||||x|[]])~"},
        {R"~({{ d.nokey is defined }} {{ d['nokey'] is defined }} {{ l[10] is defined }} {{ s.nothing is defined }} {{ 'x'.content is defined }})~",
         R"~({"x": 5, "s": "  Hello World  ", "l": [3, 1, 2], "d": {"b": 2, "a": 1, "C": 3}, "f": 2.5, "n": null, "t": true, "e": "", "u": "héllo wörld"})~",
         R"~(False False False False False)~"},
        {R"~({{ messages[2].content is none }} {{ messages[2].tool_calls is defined }} {{ messages[1].tool_calls is defined }} {{ zz == none }} {{ zz|default(none) is none }} {{ not zz }})~",
         R"~({"messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi é"}, {"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": [1, 2.5, null, true]}}}]}]})~",
         R"~(True True False False True True)~"},
};

std::string render(std::string_view tmpl, std::string_view vars = "{}", const chat::RenderLimits& limits = {}) {
    return chat::ChatTemplate(tmpl).render(chat::json::parse(vars), limits);
}

// The message of the error that parsing or rendering throws ("" if none does).
std::string error_of(std::string_view tmpl, std::string_view vars = "{}", const chat::RenderLimits& limits = {}) {
    try {
        render(tmpl, vars, limits);
    } catch (const tessera::Error& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("templates render as Python's jinja2 renders them") {
    for (const Case& c : kCases) {
        CAPTURE(c.tmpl);
        CAPTURE(c.vars);
        std::string got;
        CHECK_NOTHROW(got = render(c.tmpl, c.vars));
        CHECK(got == c.expected);
    }
}

TEST_CASE("a template renders many times and from its own variables each time") {
    const chat::ChatTemplate t(
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}");
    CHECK(t.render(chat::json::parse(R"({"messages": [{"role": "user", "content": "a"}]})")) == "<user>a");
    CHECK(t.render(chat::json::parse(R"({"messages": [], "add_generation_prompt": true})")) == "<assistant>");
    CHECK(t.render(chat::json::parse("{}")) == "");
}

TEST_CASE("raise_exception gives the template's own message") {
    try {
        render("{% if messages|length == 0 %}{{ raise_exception('Conversation must not be empty: ' ~ 0) }}{% endif %}",
               R"({"messages": []})");
        FAIL("no exception");
    } catch (const chat::TemplateRaised& e) {
        CHECK(std::string(e.what()) == "Conversation must not be empty: 0");
    }
    // Raised from inside a macro inside a loop: still the bare message.
    CHECK(
        error_of("{% macro m() %}{{ raise_exception('deep') }}{% endmacro %}{% for i in [1] %}{{ m() }}{% endfor %}") ==
        "deep");
}

TEST_CASE("syntax errors name the line and column") {
    CHECK(error_of("ok\n{{ x|nope }}") == "template line 2, column 6: unknown filter 'nope'");
    CHECK(error_of("{% if x is shiny %}{% endif %}") == "template line 1, column 12: unknown test 'shiny'");
    CHECK(error_of("\n\n  {% frobnicate %}") == "template line 3, column 6: unknown tag 'frobnicate'");
    CHECK(error_of("é{{ x|nope }}") == "template line 1, column 7: unknown filter 'nope'");  // columns count characters
    CHECK(contains(error_of("{% if x %}\nabc"), "template line 1, column 1: the 'if' tag is never closed"));
    CHECK(
        contains(error_of("{% for x in y %}\n{% endif %}"),
                 "template line 2, column 4: unexpected 'endif': the innermost open tag is 'for' (line 1, column 1)"));
    CHECK(contains(error_of("{{ 1 + }}"), "template line 1, column 8: unexpected end of print statement"));
    CHECK(contains(error_of("{{ 'abc }}"), "template line 1, column 4: unterminated string literal"));
    CHECK(contains(error_of("{{ a ! b }}"), "template line 1, column 6: unexpected character '!'"));
    CHECK(contains(error_of("{{ (1 }}"), "unexpected '}', expected ')'"));
    CHECK(contains(error_of("{{ x"), "never closed with '}}'"));
    CHECK(contains(error_of("{# open comment"), "missing end of comment tag"));
    CHECK(contains(error_of("{% raw %}never closed"), "missing {% endraw %}"));
    CHECK(contains(error_of("{% break %}"), "'break' outside of a loop"));
    CHECK(contains(error_of("{% include 'other.jinja' %}"), "'include' tags are not supported"));
    CHECK(contains(error_of("{% for x in y recursive %}{% endfor %}"), "recursive loops are not supported"));
    CHECK(contains(error_of("{% set 1 = 2 %}"), "can only assign to names"));
    CHECK(contains(error_of("{% macro m(a=1, b) %}{% endmacro %}"), "non-default argument follows default argument"));
    CHECK(contains(error_of("{{ x is defined is defined }}"), "tests cannot be chained"));
    CHECK(contains(error_of("{{ '\\xZZ' }}"), "truncated \\x escape"));
    CHECK(contains(error_of("bad \xff byte"), "template line 1, column 5: the template is not valid UTF-8"));
}

TEST_CASE("render errors name the line and say what Python would") {
    CHECK(error_of("line one\n  {{ 1 + 'a' }}") ==
          "template line 2, column 8: unsupported operand type(s) for +: 'int' and 'str'");
    CHECK(error_of("{{ 'a' + 1 }}") == "template line 1, column 8: can only concatenate str (not \"int\") to str");
    CHECK(error_of("{{ zz.attr }}") == "template line 1, column 6: 'zz' is undefined");
    CHECK(error_of("{{ d.x.y }}", R"({"d": {}})") == "template line 1, column 7: 'dict object' has no attribute 'x'");
    CHECK(error_of("{{ l[3].role }}", R"({"l": []})") == "template line 1, column 8: list object has no element 3");
    CHECK(error_of("{{ later() }}{% macro later() %}{% endmacro %}") ==
          "template line 1, column 9: 'later' is undefined");
    CHECK(contains(error_of("{{ 1 / 0 }}"), "division by zero"));
    CHECK(contains(error_of("{{ zz|tojson }}"), "Object of type Undefined is not JSON serializable"));
    CHECK(contains(error_of("{{ 'a' < 1 }}"), "'<' not supported between instances of 'str' and 'int'"));
    CHECK(contains(error_of("{{ 1 in 'abc' }}"), "'in <string>' requires string as left operand, not int"));
    CHECK(contains(error_of("{% for a, b in [[1]] %}{% endfor %}"), "not enough values to unpack (expected 2, got 1)"));
    CHECK(contains(error_of("{% set x = 1 %}{% set x.y = 2 %}"), "cannot assign attribute on non-namespace object"));
    CHECK(contains(error_of("{{ 5|length }}"), "object of type 'int' has no len()"));
    CHECK(contains(error_of("{{ [1]|select('odd')|length }}"), "object of type 'generator' has no len()"));
    CHECK(contains(error_of("{{ 'x'.nope() }}"), "'str object' has no attribute 'nope'"));
    CHECK(contains(error_of("{{ [1]|map('nope')|list }}"), "no filter named 'nope'"));
    CHECK(contains(error_of("{{ 9223372036854775807 + 1 }}"), "integer overflow"));
    CHECK(contains(error_of("{{ 'x'|indent(2) + none }}"), "can only concatenate str"));
}

TEST_CASE("hostile templates stay bounded") {
    const std::string deep_parens = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
    CHECK(contains(error_of(deep_parens), "nested too deeply"));
    std::string deep_ifs;
    for (int i = 0; i < 5000; ++i) deep_ifs += "{% if true %}";
    CHECK(contains(error_of(deep_ifs), "nested too deeply"));
    std::string long_sum = "{{ 1";
    for (int i = 0; i < 20000; ++i) long_sum += "+1";
    CHECK(contains(error_of(long_sum + " }}"), "expression nested too deeply"));
    CHECK(contains(error_of("{{ " + std::string(20000, '-') + "1 }}"), "nested too deeply"));
    CHECK(contains(error_of("{{ x" +
                            [] {
                                std::string f;
                                for (int i = 0; i < 2000; ++i) f += "|trim";
                                return f;
                            }() +
                            " }}"),
                   "nested too deeply"));

    chat::RenderLimits small;
    small.max_steps = 100000;
    CHECK(contains(
        error_of("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "{}", small),
        "steps"));
    CHECK(contains(error_of("{{ range(1000000)|length }}"), "Range too big"));
    CHECK(contains(
        error_of("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"),
        "string longer than"));
    CHECK(contains(
        error_of("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}"),
        "list too long"));
    CHECK(contains(error_of("{{ 'a' * 1000000000000 }}"), "string longer than"));
    CHECK(contains(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), "maximum recursion depth exceeded"));
    // Containers never hold themselves (shared ownership would leak them).
    CHECK(contains(error_of("{% set x = [] %}{% set _ = x.append(x) %}"), "a list cannot contain itself"));
    CHECK(contains(error_of("{% set x = [] %}{% set _ = x.append([1, {'k': x}]) %}"), "a list cannot contain itself"));
    CHECK(contains(error_of("{% set x = [] %}{% set _ = x.append(x.append) %}"), "a list cannot contain itself"));
    CHECK(contains(error_of("{% set d = {} %}{% set _ = d.update({'me': d}) %}"), "a dict cannot contain itself"));
    CHECK(contains(error_of("{% set ns = namespace() %}{% set ns.me = [ns] %}"), "a namespace cannot contain itself"));
    CHECK(render("{% set d = {'a': 1} %}{% set _ = d.update(d) %}{{ d }}") == "{'a': 1}");
    std::string deep_list =
        "{% set ns = namespace(x=[]) %}{% for i in range(300) %}{% set ns.x = [ns.x] %}{% endfor %}";
    CHECK(contains(error_of(deep_list + "{{ ns.x }}"), "nested too deeply"));
    CHECK(contains(error_of(deep_list + "{{ ns.x|tojson }}"), "nested too deeply"));
    chat::RenderLimits tiny_output;
    tiny_output.max_output_bytes = 1000;
    CHECK(contains(error_of("{% for i in range(1000) %}0123456789{% endfor %}", "{}", tiny_output),
                   "longer than 1000 bytes"));
}

TEST_CASE("strftime_now formats the current time") {
    const std::string year = render("{{ strftime_now('%Y') }}");
    REQUIRE(year.size() == 4);
    CHECK(year >= "2024");
    CHECK(render("{{ strftime_now('%d %b %Y')|length }}") == "11");
}

TEST_CASE("append and pop change the list in place") {
    // Hugging Face's sandbox refuses list mutation; we allow append/pop/extend/insert,
    // as llama.cpp does, since some community templates use them.
    CHECK(render("{% set xs = [1] %}{% set _ = xs.append(2) %}{% set _ = xs.extend([3, 4]) %}{{ xs.pop() }}{{ "
                 "xs.pop(0) }}{{ xs }}") == "41[2, 3]");
    CHECK(render("{% set d = {'a': 1} %}{% set _ = d.update({'b': 2}) %}{{ d.pop('a') }}{{ d }}") == "1{'b': 2}");
}

TEST_CASE("mutated templates parse and render or fail cleanly") {
    // Random edits of a realistic template: every outcome is output or a tessera::Error.
    const std::string seed =
        "{%- set ns = namespace(first=true) -%}{% macro show(m, sep='\\n') %}{{ m.role|upper }}: {{ m.content|trim }}"
        "{{ sep }}{% endmacro %}{% for m in messages if m.role != 'tool' %}{% if loop.first and m.role == 'system' %}"
        "[{{ m.content }}]{% elif m.content is string %}{{ show(m) }}{% else %}{{ m.content|tojson(indent=2) }}"
        "{% endif %}{% set ns.first = false %}{% endfor %}{{ '<gen>' if add_generation_prompt else '' }}"
        "{# done #}{% raw %}{{ raw }}{% endraw %}{{ (messages|map(attribute='role')|list)[::-1]|join(',') }}";
    const char* vars = R"({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": " hi "},)"
                       R"( {"role": "assistant", "content": [1, {"a": null}]}], "add_generation_prompt": true})";
    const chat::Value variables = chat::json::parse(vars);
    REQUIRE_NOTHROW(chat::ChatTemplate(seed).render(variables));
    const char* pieces[] = {"{%",        "%}",   "{{",   "}}",   "{#", "#}", "-", "(",
                            ")",         "[",    "]",    "'",    "|",  ".",  ",", "endif",
                            "endfor",    "not ", " in ", "loop", "1",  "\n", " ", "{% endmacro %}",
                            "{% if x %}"};
    std::mt19937 rng(20240611);
    int rendered = 0, failed = 0;
    for (int round = 0; round < 3000; ++round) {
        std::string t = seed;
        for (int e = 1 + static_cast<int>(rng() % 3); e > 0 && !t.empty(); --e) {
            const size_t at = rng() % t.size();
            if (rng() % 2)
                t.erase(at, 1 + rng() % 4);
            else
                t.insert(at, pieces[rng() % std::size(pieces)]);
        }
        try {
            chat::ChatTemplate(t).render(variables);
            ++rendered;
        } catch (const tessera::Error&) {
            ++failed;
        }
    }
    CHECK(rendered + failed == 3000);
    CHECK(rendered > 0);
    CHECK(failed > 0);
}
