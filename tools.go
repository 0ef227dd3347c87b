//go:build tools

package tools
import (
 _ "github.com/go-chi/chi/v5"
 _ "github.com/expr-lang/expr"
 _ "github.com/jmoiron/sqlx"
 _ "modernc.org/sqlite"
 _ "github.com/jackc/pgx/v5/stdlib"
 _ "github.com/ThreeDotsLabs/watermill"
 _ "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
 _ "go.yaml.in/yaml/v3"
 _ "github.com/spf13/cobra"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/prometheus/client_golang/prometheus/promhttp"
 _ "github.com/google/uuid"
 _ "golang.org/x/crypto/bcrypt"
 _ "golang.org/x/crypto/argon2"
 _ "golang.org/x/text/encoding/charmap"
)
