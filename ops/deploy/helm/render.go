// render renders a Helm chart the way `helm template` does, for machines without helm
// (ops/deploy/check.sh builds it with Debian's Go packages, offline, in GOPATH mode).
//
//	go run render.go -chart collab -f extra.yaml -name prod -namespace collab -out DIR
//
// What it reproduces of Helm 3: every file of templates/ parsed into one set, named
// "<chart>/templates/<file>"; files starting with "_" and NOTES.txt are not rendered;
// sprig's functions without env/expandenv (as Helm removes them), plus include, tpl,
// required, toYaml, fromYaml, toJson and lookup (empty, as in `helm template`); .Values
// from values.yaml with each -f file merged over it (maps deep-merged, lists replaced),
// read as Helm reads them (YAML 1.1, then JSON: every number a float64, so 1048576
// prints as 1.048576e+06 unless quoted, as it would with helm); .Chart from Chart.yaml
// with Helm's capitalised keys (Name, Version, AppVersion...); .Release; .Template;
// .Capabilities.KubeVersion; toYaml as sigs.k8s.io/yaml writes it (JSON, then yaml.v2).
//
// Stricter than helm: -strict (on by default) executes with missingkey=error, so a
// reference to a value that values.yaml does not define fails instead of rendering
// empty; every document must parse as YAML and have apiVersion, kind and a valid
// metadata.name, and no two may share kind and name. Each document is written to
// OUT/NN-<kind>-<name>.yaml; stdout lists them.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v2"
)

type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	chartDir := flag.String("chart", "collab", "chart directory")
	var valueFiles fileList
	flag.Var(&valueFiles, "f", "values file merged over values.yaml (repeatable)")
	release := flag.String("name", "collab", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "v1.33.0", ".Capabilities.KubeVersion")
	out := flag.String("out", "", "directory to write the manifests to (emptied first)")
	strict := flag.Bool("strict", true, "fail on references to values that do not exist")
	flag.Parse()
	if *out == "" {
		fail(errors.New("-out is required"))
	}
	if err := run(*chartDir, valueFiles, *release, *namespace, *kubeVersion, *out, *strict); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "render: %v\n", err)
	os.Exit(1)
}

// readYAML reads a YAML file as Helm does (sigs.k8s.io/yaml: YAML 1.1, then JSON).
func readYAML(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	converted, err := jsonable(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	encoded, err := json.Marshal(converted)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	var values map[string]interface{}
	if err := json.Unmarshal(encoded, &values); err != nil {
		return nil, fmt.Errorf("%s: not a map at the top: %v", path, err)
	}
	return values, nil
}

// jsonable turns yaml.v2's map[interface{}]interface{} into JSON-encodable maps.
func jsonable(v interface{}) (interface{}, error) {
	switch t := v.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, val := range t {
			c, err := jsonable(val)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = c
		}
		return m, nil
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, val := range t {
			c, err := jsonable(val)
			if err != nil {
				return nil, err
			}
			l[i] = c
		}
		return l, nil
	default:
		return v, nil
	}
}

// merge puts over onto base as Helm merges values files: maps deep, anything else replaced.
func merge(base, over map[string]interface{}) map[string]interface{} {
	for k, v := range over {
		if vm, ok := v.(map[string]interface{}); ok {
			if bm, ok := base[k].(map[string]interface{}); ok {
				base[k] = merge(bm, vm)
				continue
			}
		}
		base[k] = v
	}
	return base
}

// toYAML is Helm's toYaml: sigs.k8s.io/yaml.Marshal (JSON, then yaml.v2, keys sorted),
// without the final newline.
func toYAML(v interface{}) (string, error) {
	encoded, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	var obj interface{}
	if err := yaml.Unmarshal(encoded, &obj); err != nil {
		return "", err
	}
	out, err := yaml.Marshal(obj)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

func chartMetadata(path string) (map[string]interface{}, string, error) {
	raw, err := readYAML(path)
	if err != nil {
		return nil, "", err
	}
	meta := map[string]interface{}{}
	for k, v := range raw {
		switch k {
		case "apiVersion":
			meta["APIVersion"] = v
		case "kubeVersion":
			meta["KubeVersion"] = v
		default:
			meta[strings.ToUpper(k[:1])+k[1:]] = v
		}
	}
	name, _ := meta["Name"].(string)
	if name == "" {
		return nil, "", fmt.Errorf("%s: no name", path)
	}
	if v, _ := meta["Version"].(string); v == "" {
		return nil, "", fmt.Errorf("%s: no version", path)
	}
	if v, _ := meta["APIVersion"].(string); v != "v2" {
		return nil, "", fmt.Errorf("%s: apiVersion must be v2 for Helm 3", path)
	}
	return meta, name, nil
}

type kubeVersion struct{ Version, Major, Minor, GitVersion string }

type capabilities struct {
	KubeVersion kubeVersion
	APIVersions apiVersions
}

type apiVersions []string

// Has says whether an API version is available; `helm template` assumes the built-in ones.
func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

func run(chartDir string, valueFiles []string, release, namespace, kubeVer, out string, strict bool) error {
	meta, chartName, err := chartMetadata(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range valueFiles {
		over, err := readYAML(f)
		if err != nil {
			return err
		}
		values = merge(values, over)
	}

	// Every template file, named as Helm names them.
	templatesDir := filepath.Join(chartDir, "templates")
	var names []string
	sources := map[string]string{}
	err = filepath.Walk(templatesDir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(templatesDir, path)
		name := chartName + "/templates/" + filepath.ToSlash(rel)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		names = append(names, name)
		sources[name] = string(data)
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)

	root := template.New("chart")
	if strict {
		root.Option("missingkey=error")
	} else {
		root.Option("missingkey=zero")
	}
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	includeDepth := 0
	funcs["include"] = func(name string, data interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 1000 {
			return "", fmt.Errorf("include %q: nested too deeply", name)
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return v, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, errors.New(msg)
		}
		return v, nil
	}
	funcs["toYaml"] = func(v interface{}) string {
		s, err := toYAML(v)
		if err != nil {
			return "" // as Helm: toYaml swallows errors
		}
		return s
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		var raw interface{}
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
			m["Error"] = err.Error()
			return m
		}
		if c, err := jsonable(raw); err == nil {
			if cm, ok := c.(map[string]interface{}); ok {
				return cm
			}
		}
		return m
	}
	funcs["toJson"] = func(v interface{}) string {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
	funcs["lookup"] = func(...interface{}) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	root.Funcs(funcs)
	for _, name := range names {
		if _, err := root.New(name).Parse(sources[name]); err != nil {
			return err
		}
	}

	major, minor := "1", "33"
	if parts := strings.Split(strings.TrimPrefix(kubeVer, "v"), "."); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	top := map[string]interface{}{
		"Values": values,
		"Chart":  meta,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": capabilities{
			KubeVersion: kubeVersion{Version: kubeVer, Major: major, Minor: minor, GitVersion: kubeVer},
			APIVersions: apiVersions{"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2"},
		},
		"Files": map[string]interface{}{},
	}

	if err := os.RemoveAll(out); err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	separator := regexp.MustCompile(`(?m)^---\s*$`)
	seen := map[string]string{}
	count := 0
	for _, name := range names {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" {
			continue
		}
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{"Name": name, "BasePath": chartName + "/templates"}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return err
		}
		rendered := strings.ReplaceAll(buf.String(), "<no value>", "")
		for _, doc := range separator.Split(rendered, -1) {
			if onlyComments(doc) {
				continue
			}
			kind, objName, err := checkDocument(doc)
			if err != nil {
				return fmt.Errorf("%s: %v\n--- the document:\n%s", name, err, doc)
			}
			key := kind + "/" + objName
			if other, dup := seen[key]; dup {
				return fmt.Errorf("%s and %s both make %s", other, name, key)
			}
			seen[key] = name
			count++
			file := filepath.Join(out, fmt.Sprintf("%02d-%s-%s.yaml", count, strings.ToLower(kind), objName))
			text := "# Source: " + name + "\n" + strings.TrimLeft(doc, "\n")
			if !strings.HasSuffix(text, "\n") {
				text += "\n"
			}
			if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
				return err
			}
			fmt.Printf("%s\t%s\n", key, filepath.Base(file))
		}
	}
	if count == 0 {
		return errors.New("the chart rendered no manifest")
	}
	return nil
}

func onlyComments(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

var (
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dns1035Label     = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)
)

// checkDocument parses one manifest and checks what Kubernetes' schemas do not: that
// there is one object with a kind and a name the API server accepts.
func checkDocument(doc string) (string, string, error) {
	var obj map[string]interface{}
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		return "", "", fmt.Errorf("not YAML: %v", err)
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	if apiVersion == "" || kind == "" {
		return "", "", errors.New("no apiVersion or kind")
	}
	metadata, _ := obj["metadata"].(map[interface{}]interface{})
	name, _ := metadata["name"].(string)
	if name == "" {
		return "", "", errors.New("no metadata.name")
	}
	if len(name) > 253 || !dns1123Subdomain.MatchString(name) {
		return "", "", fmt.Errorf("metadata.name %q is not a DNS-1123 subdomain", name)
	}
	if kind == "Service" && (len(name) > 63 || !dns1035Label.MatchString(name)) {
		return "", "", fmt.Errorf("Service name %q is not a DNS-1035 label (at most 63 characters)", name)
	}
	return kind, name, nil
}
