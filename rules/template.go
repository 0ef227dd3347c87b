package rules

import (
	"strings"

	"github.com/koppelpoort/koppelpoort/transforms"
)

// Template is text with {{ expression }} parts, compiled once: `invalid BSN {{ record.bsn }}`.
type Template struct {
	parts []part
}

type part struct {
	text string
	prog *transforms.Program
}

// TemplateError is a template part that does not compile; Offset is the rune offset of the expression
// inside the template text.
type TemplateError struct {
	Offset int
	Err    *transforms.CompileError
}

func (e *TemplateError) Error() string { return e.Err.Error() }

// CompileTemplate compiles src; text without {{ }} is a constant.
func CompileTemplate(e *transforms.Engine, src string) (*Template, error) {
	t := &Template{}
	rest := src
	offset := 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, part{text: rest})
			}
			return t, nil
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return nil, &TemplateError{Offset: len([]rune(src[:offset+i])), Err: &transforms.CompileError{Line: 1, Column: 1, Message: "unclosed {{ in template"}}
		}
		if i > 0 {
			t.parts = append(t.parts, part{text: rest[:i]})
		}
		exprSrc := rest[i+2 : i+j]
		p, err := e.Compile(exprSrc, transforms.Any)
		if err != nil {
			ce := err.(*transforms.CompileError)
			return nil, &TemplateError{Offset: len([]rune(src[:offset+i+2])), Err: ce}
		}
		t.parts = append(t.parts, part{prog: p})
		offset += i + j + 2
		rest = rest[i+j+2:]
	}
}

// Render evaluates the template; a nil template renders "".
func (t *Template) Render(env transforms.Env) (string, error) {
	if t == nil {
		return "", nil
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.prog == nil {
			b.WriteString(p.text)
			continue
		}
		v, err := p.prog.Eval(env)
		if err != nil {
			return "", err
		}
		b.WriteString(transforms.Text(v))
	}
	return b.String(), nil
}
