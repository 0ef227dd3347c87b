package loadtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v4"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// SelfOptions configure StartSelf.
type SelfOptions struct {
	// Command runs a Koppelpoort server from a config file: it gets
	// "--config <file>" (and "--cpuprofile <file>") appended. For the
	// koppelpoort binary: [<binary>, "load", "serve-self"].
	Command []string
	// DSN is "" for a fresh SQLite file in a temporary directory, or a
	// postgres:// URL of a server on which a fresh database is created (and
	// dropped again by Stop unless KeepData).
	DSN string
	// SQLiteSynchronous is FULL (default) or NORMAL.
	SQLiteSynchronous string
	// KeepData keeps the temporary directory / database after Stop.
	KeepData bool
	// DataDir is where the temporary directory (SQLite database, config,
	// server log) is created. Default os.TempDir(). It should be on the disk
	// whose speed you want to know: a tmpfs makes fsync free.
	DataDir string
	// CPUProfile, when set, makes the server write a pprof CPU profile there.
	CPUProfile string
	// LogLevel of the server (its log goes to server.log in the data directory). Default warn.
	LogLevel string
	// StartTimeout bounds the wait for /readyz. Default 60s.
	StartTimeout time.Duration
	// Progress, when not nil, gets progress lines of the prefill (Scenario.Prefill).
	Progress io.Writer
	// Processes is how many server processes share the database (default 1;
	// more need PostgreSQL). URL then lists them all, separated by commas, and
	// the load goes to each in turn.
	Processes int
	// HoldRemoval, with a prefill, keeps the server's removal job from running
	// until this long after the prefill (its lease, store.TakeLease): the
	// first run then falls inside the load phase instead of at the server's
	// start. 0: the job runs at start as usual.
	HoldRemoval time.Duration
	// PrefillSnapshot, with a prefill, is a file the prefilled database is
	// copied to (with PrefillSnapshot+".json" describing it; on PostgreSQL
	// the copy is a database of its own) when it does not exist yet, and
	// copied from instead of prefilling when it does: legs to compare start
	// from the same database (snapshot.go).
	PrefillSnapshot string
	// ClaimTimeout is the server's koppeltaal claim_timeout (0: its default,
	// 5m). A claim whose reply is lost (a failover) is delivered again after it.
	ClaimTimeout time.Duration
}

// SelfServer is a Koppelpoort server started by StartSelf.
type SelfServer struct {
	// URL is the server's base URL (http://127.0.0.1:port).
	URL string
	// PID of the server process.
	PID int
	// Instances are the provisioned application instances with their passwords.
	Instances []InstanceSpec
	// StoreLabel describes the store for the report.
	StoreLabel string
	// Dir holds the config, the server log and (SQLite) the database.
	Dir string
	// LogPath is the server's log file.
	LogPath string
	// Prefill describes the messages written into the database before the
	// server started (Scenario.Prefill); nil without. Pass it to Run.
	Prefill *Prefill

	// PIDs are all server processes (PID is the first).
	PIDs []int
	// DSN is the server's database: the SQLite file or the PostgreSQL URL.
	DSN string

	opts     SelfOptions
	others   []*SelfServer // the further processes of Processes; they share Dir and the database
	cmd      *exec.Cmd
	exited   chan error
	died     chan struct{} // closed when the process ends, for whatever reason
	pgAdmin  string        // DSN to drop the database with
	pgDB     string
	sqliteOK bool
}

// Provision builds the Koppeltaal configuration for a scenario: per domain one
// practitioner portal (sends Patients and CarePlans, subscribes to activity
// status) and SubscribersPerEvent instances subscribed to the events it sends:
// a patient portal, a game, a questionnaire, a related-person portal, more
// games and questionnaires. Portals also receive UpdateCarePlanActivityStatus;
// games and questionnaires send it. Passwords are random per run.
func Provision(sc *Scenario) (koppeltaal.Config, []InstanceSpec, error) {
	cycle := []struct{ role, ktRole string }{
		{RolePatientPortal, "PatientPortal"}, {RoleGame, "Game"}, {RoleQuestionnaire, "ROM"}, {RoleRelatedPersonPortal, "RelatedPersonPortal"},
	}
	type app struct{ id, role, ktRole string }
	apps := []app{{"lt-practitioner-portal", RolePractitionerPortal, "PractitionerPortal"}}
	for k := range sc.SubscribersPerEvent {
		c := cycle[k%len(cycle)]
		id := "lt-" + c.role
		if k >= len(cycle) {
			id = fmt.Sprintf("lt-%s-%d", c.role, k/len(cycle)+1)
		}
		apps = append(apps, app{id, c.role, c.ktRole})
	}
	var cfg koppeltaal.Config
	for _, a := range apps {
		cfg.Applications = append(cfg.Applications, koppeltaal.ApplicationConfig{ID: a.id, Name: "Load test " + a.role, Roles: []string{a.ktRole}})
	}
	var specs []InstanceSpec
	for d := range sc.Domains {
		domain := fmt.Sprintf("loadtest-%d", d+1)
		cfg.Domains = append(cfg.Domains, koppeltaal.DomainConfig{Name: domain})
		for _, a := range apps {
			var subs []string
			switch a.role {
			case RolePractitionerPortal:
				subs = []string{EventActivityStatus}
			case RolePatientPortal, RoleRelatedPersonPortal:
				subs = []string{EventPatient, EventCarePlan, EventActivityStatus}
			default:
				subs = []string{EventPatient, EventCarePlan}
			}
			pw := randomHex(12)
			user := a.id + "@" + domain
			cfg.Instances = append(cfg.Instances, koppeltaal.InstanceConfig{Application: a.id, Domain: domain, Username: user, Password: pw,
				APIVersion: koppeltaal.APIVersion135, Subscriptions: subs})
			specs = append(specs, InstanceSpec{Domain: domain, Application: a.id, Role: a.role, Username: user, Password: pw, Subscriptions: subs})
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, nil, fmt.Errorf("provisioned configuration is invalid: %w", err)
	}
	return cfg, specs, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// StartSelf provisions a configuration for sc, starts a Koppelpoort server as
// a child process on a fresh store and waits until it is ready.
func StartSelf(ctx context.Context, sc *Scenario, o SelfOptions) (_ *SelfServer, err error) {
	if len(o.Command) == 0 {
		return nil, errors.New("loadtest: no server command to start")
	}
	if o.SQLiteSynchronous == "" {
		o.SQLiteSynchronous = "FULL"
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.Processes <= 0 {
		o.Processes = 1
	}
	if o.Processes > 1 && o.DSN == "" {
		return nil, errors.New("loadtest: several server processes need a shared PostgreSQL database (--dsn postgres://...)")
	}
	ktCfg, specs, err := Provision(sc)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(o.DataDir, "koppelpoort-load-*")
	if err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s := &SelfServer{Dir: dir, Instances: specs, opts: o, LogPath: filepath.Join(dir, "server.log")}
	defer func() {
		if err != nil {
			for _, p := range append([]*SelfServer{s}, s.others...) {
				if p.cmd != nil && p.cmd.Process != nil { // started but never became ready
					_ = p.cmd.Process.Kill()
					<-p.exited
				}
			}
			s.cleanup()
		}
	}()
	dsn := filepath.Join(dir, "koppelpoort.db")
	s.StoreLabel = "sqlite synchronous=" + strings.ToUpper(o.SQLiteSynchronous)
	if onTmpfs(dir) {
		s.StoreLabel += " ON TMPFS (fsync is free: not a durable-store measurement)"
	}
	if o.DSN != "" {
		if !strings.HasPrefix(o.DSN, "postgres://") && !strings.HasPrefix(o.DSN, "postgresql://") {
			return nil, fmt.Errorf("--dsn %q: want a postgres:// URL (SQLite is the default)", store.Redact(o.DSN, o.DSN))
		}
		if dsn, err = s.createPostgresDB(ctx, o.DSN); err != nil {
			return nil, err
		}
		s.StoreLabel = "postgres " + s.pgDB
	} else {
		s.sqliteOK = true
	}
	if sc.Prefill > 0 {
		// Provisioned and filled through the store while no server holds the
		// database; the server applies the same configuration again at start
		// (idempotent) and finds the messages waiting.
		if s.Prefill, err = s.prefillOrRestore(ctx, dsn, ktCfg, specs, sc); err != nil {
			return nil, err
		}
		if o.HoldRemoval > 0 {
			if err := holdRemovalJob(ctx, dsn, o.SQLiteSynchronous, o.HoldRemoval); err != nil {
				return nil, fmt.Errorf("prefill: %w", err)
			}
		}
	}
	s.DSN = dsn
	if err := s.startProcess(ctx, dsn, ktCfg, "koppelpoort.yaml"); err != nil {
		return nil, err
	}
	s.PIDs = []int{s.PID}
	urls := []string{s.URL}
	for i := 2; i <= o.Processes; i++ {
		p := &SelfServer{Dir: dir, opts: o, LogPath: filepath.Join(dir, fmt.Sprintf("server-%d.log", i))}
		s.others = append(s.others, p)
		if err := p.startProcess(ctx, dsn, ktCfg, fmt.Sprintf("koppelpoort-%d.yaml", i)); err != nil {
			return nil, err
		}
		s.PIDs, urls = append(s.PIDs, p.PID), append(urls, p.URL)
	}
	s.URL = strings.Join(urls, ",")
	if o.Processes > 1 {
		s.StoreLabel += fmt.Sprintf(", %d server processes", o.Processes)
	}
	return s, nil
}

// startProcess starts one server process with its own listen address and
// configuration file cfgName (in s.Dir) and waits until it is ready.
func (s *SelfServer) startProcess(ctx context.Context, dsn string, ktCfg koppeltaal.Config, cfgName string) error {
	o := s.opts
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	s.URL = "http://" + addr
	cfgPath := filepath.Join(s.Dir, cfgName)
	if err := writeServerConfig(cfgPath, addr, dsn, o, ktCfg); err != nil {
		return err
	}
	logf, err := os.Create(s.LogPath)
	if err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	args := append(append([]string(nil), o.Command[1:]...), "--config", cfgPath)
	if o.CPUProfile != "" && cfgName == "koppelpoort.yaml" {
		args = append(args, "--cpuprofile", o.CPUProfile)
	}
	cmd := exec.Command(o.Command[0], args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a ^C on the load tool reaches us, not the server
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start server %s: %w", o.Command[0], err)
	}
	s.cmd, s.PID = cmd, cmd.Process.Pid
	s.exited = make(chan error, 1)
	s.died = make(chan struct{})
	go func() {
		err := cmd.Wait()
		logf.Close()
		close(s.died)
		s.exited <- err
	}()
	return s.waitReady(ctx)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func writeServerConfig(path, addr, dsn string, o SelfOptions, kt koppeltaal.Config) error {
	type ktSection struct {
		Domains       []koppeltaal.DomainConfig      `yaml:"domains"`
		Applications  []koppeltaal.ApplicationConfig `yaml:"applications"`
		Instances     []koppeltaal.InstanceConfig    `yaml:"instances"`
		ClaimTimeout  string                         `yaml:"claim_timeout,omitempty"`
		SweepInterval string                         `yaml:"sweep_interval,omitempty"`
	}
	kts := ktSection{Domains: kt.Domains, Applications: kt.Applications, Instances: kt.Instances}
	if o.ClaimTimeout > 0 {
		kts.ClaimTimeout, kts.SweepInterval = o.ClaimTimeout.String(), min(o.ClaimTimeout/4, 10*time.Second).String()
	}
	doc := map[string]any{
		"server":     map[string]any{"addr": addr},
		"store":      map[string]any{"dsn": dsn, "sqlite_synchronous": strings.ToUpper(o.SQLiteSynchronous)},
		"log":        map[string]any{"level": o.LogLevel, "format": "json"},
		"koppeltaal": kts,
	}
	var b bytes.Buffer
	b.WriteString("# Written by koppelpoort load --self for one run; passwords are random per run.\n")
	enc := yaml.NewEncoder(&b)
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("encode server config: %w", err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write server config: %w", err)
	}
	return nil
}

func (s *SelfServer) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(s.opts.StartTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-s.exited:
			s.exited <- err
			return fmt.Errorf("server exited before it was ready (%v); its log:\n%s", err, tail(s.LogPath, 20))
		default:
		}
		resp, err := hc.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after %s at %s; its log:\n%s", s.opts.StartTimeout, s.URL, tail(s.LogPath, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// RemovalRuns returns the removal runs in the logs of the server processes
// (whichever holds the job's lease runs it); they are logged at level info.
func (s *SelfServer) RemovalRuns() ([]RemovalRun, error) {
	var all []RemovalRun
	for _, p := range append([]*SelfServer{s}, s.others...) {
		runs, err := ReadRemovalRuns(p.LogPath)
		if err != nil {
			return nil, err
		}
		all = append(all, runs...)
	}
	slices.SortFunc(all, func(a, b RemovalRun) int { return a.Start.Compare(b.Start) })
	return all, nil
}

// LogTail returns the last n lines of the server's log.
func (s *SelfServer) LogTail(n int) string { return tail(s.LogPath, n) }

// Died is closed when a server process has ended (crashed or stopped).
func (s *SelfServer) Died() <-chan struct{} {
	if len(s.others) == 0 {
		return s.died
	}
	any := make(chan struct{})
	for _, p := range append([]*SelfServer{s}, s.others...) {
		go func() {
			<-p.died
			select {
			case <-any:
			default:
				close(any)
			}
		}()
	}
	return any
}

// MeasureCommitRate probes the raw commit rate of the store this server uses.
func (s *SelfServer) MeasureCommitRate(ctx context.Context, d time.Duration) (*CommitRate, error) {
	if s.pgDB != "" {
		return MeasurePostgresCommitRate(ctx, s.pgAdmin, d)
	}
	return MeasureSQLiteCommitRate(ctx, s.Dir, s.opts.SQLiteSynchronous, d)
}

// Stop asks the server to shut down (SIGINT), waits up to 20s (then kills it)
// and removes the temporary data unless KeepData.
func (s *SelfServer) Stop() error {
	var errs []error
	for _, p := range append(append([]*SelfServer(nil), s.others...), s) {
		errs = append(errs, p.stopProcess())
	}
	s.cleanup()
	return errors.Join(errs...)
}

// stopProcess stops this one process.
func (s *SelfServer) stopProcess() error {
	var err error
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case werr := <-s.exited:
			if werr != nil {
				err = fmt.Errorf("server exited with %v; log in %s", werr, s.LogPath)
			}
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
			err = fmt.Errorf("server did not stop within 20s after SIGINT and was killed")
		}
	}
	return err
}

func (s *SelfServer) cleanup() {
	if s.opts.KeepData {
		return
	}
	if s.pgDB != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, s.pgAdmin); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{s.pgDB}.Sanitize()+" WITH (FORCE)")
			conn.Close(ctx)
		}
	}
	if s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// createPostgresDB creates a fresh database on the server of adminDSN and
// returns the DSN pointing at it.
func (s *SelfServer) createPostgresDB(ctx context.Context, adminDSN string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, adminDSN)
	if err != nil {
		return "", fmt.Errorf("connect to postgres to create the load-test database: %s", store.Redact(err.Error(), adminDSN))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	name := "kp_load_" + randomHex(6)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	s.pgAdmin, s.pgDB = adminDSN, name
	u, err := url.Parse(adminDSN)
	if err != nil {
		return "", fmt.Errorf("postgres dsn: %s", store.Redact(err.Error(), adminDSN))
	}
	u.Path = "/" + name
	return u.String(), nil
}

// onTmpfs reports whether dir is on a RAM file system, where fsync costs nothing.
func onTmpfs(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	const tmpfsMagic, ramfsMagic = 0x01021994, 0x858458f6
	return st.Type == tmpfsMagic || st.Type == ramfsMagic
}
