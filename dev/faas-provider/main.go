// Command faas-provider stands in for faas-netes in the operator's tests.
//
// faas-netes, the OpenFaaS provider for Kubernetes, cannot be built on the project's machines:
// the Go module proxy refuses github.com/openfaas/faas-netes (see /work/shared/HARNESS.md). It
// is built on github.com/openfaas/faas-provider, which the proxy serves, and so is this fixture:
// it runs faas-provider's own router (bootstrap.Serve, with its basic-auth decorator) and
// decodes requests into faas-provider's own types, then does with a function what faas-netes
// does — a Deployment and a Service named after the function in the function namespace,
// labelled faas_function=<name>, port 8080, ready on /_/health — against the API server of
// the kubeconfig it is given. It lists, reports, updates and deletes those functions too.
// Scaling, logs, secrets and invocation are outside what the operator uses and answer 501.
//
// Usage:
//
//	faas-provider --port 18081 --kubeconfig admin.kubeconfig \
//	    --secret-mount-path DIR --function-namespace openfaas-fn
//
// DIR holds the files basic-auth-user and basic-auth-password, as in an OpenFaaS install.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/gorilla/mux"
	bootstrap "github.com/openfaas/faas-provider"
	"github.com/openfaas/faas-provider/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// functionLabel is the label faas-netes selects function Deployments by.
const functionLabel = "faas_function"

// functionPort is the port every OpenFaaS function container listens on.
const functionPort = 8080

// provider turns provider API requests into Deployments and Services.
type provider struct {
	clients          kubernetes.Interface
	defaultNamespace string
}

func main() {
	port := flag.Int("port", 8081, "port the provider API listens on")
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	secrets := flag.String("secret-mount-path", "", "folder with basic-auth-user and basic-auth-password")
	namespace := flag.String("function-namespace", "openfaas-fn", "namespace of requests that name none")
	flag.Parse()

	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("read kubeconfig %s: %v", *kubeconfig, err)
	}
	clients, err := kubernetes.NewForConfig(config)
	if err != nil {
		log.Fatalf("kubernetes client: %v", err)
	}
	p := &provider{clients: clients, defaultNamespace: *namespace}

	notImplemented := func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not implemented by the test provider", http.StatusNotImplemented)
	}
	handlers := &types.FaaSHandlers{
		FunctionLister: p.list,
		DeployFunction: p.deploy,
		UpdateFunction: p.update,
		DeleteFunction: p.delete,
		FunctionStatus: p.status,
		Info:           p.info,
		FunctionProxy:  notImplemented,
		ScaleFunction:  notImplemented,
		Secrets:        notImplemented,
		Logs:           notImplemented,
		ListNamespaces: notImplemented,
		Health:         func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) },
	}
	config2 := &types.FaaSConfig{
		TCPPort:         port,
		EnableHealth:    true,
		EnableBasicAuth: *secrets != "",
		SecretMountPath: *secrets,
	}

	// SIGTERM or Ctrl-C ends Serve, which shuts its server down.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	log.Printf("test faas-provider listening on :%d, functions in %s", *port, *namespace)
	bootstrap.Serve(ctx, handlers, config2)
}

func (p *provider) namespace(requested string) string {
	if requested == "" {
		return p.defaultNamespace
	}
	return requested
}

func (p *provider) deploy(w http.ResponseWriter, r *http.Request) {
	var request types.FunctionDeployment
	if err := json.NewDecoder(r.Body).Decode(&request); err != nil {
		http.Error(w, fmt.Sprintf("invalid deployment request: %v", err), http.StatusBadRequest)
		return
	}
	ns := p.namespace(request.Namespace)
	deployment, service := desired(request, ns)
	ctx := r.Context()
	if _, err := p.clients.AppsV1().Deployments(ns).Create(ctx, deployment, metav1.CreateOptions{}); err != nil {
		fail(w, "create deployment", err)
		return
	}
	if _, err := p.clients.CoreV1().Services(ns).Create(ctx, service, metav1.CreateOptions{}); err != nil {
		fail(w, "create service", err)
		return
	}
	log.Printf("deployed %s/%s (%s)", ns, request.Service, request.Image)
	w.WriteHeader(http.StatusAccepted)
}

func (p *provider) update(w http.ResponseWriter, r *http.Request) {
	var request types.FunctionDeployment
	if err := json.NewDecoder(r.Body).Decode(&request); err != nil {
		http.Error(w, fmt.Sprintf("invalid deployment request: %v", err), http.StatusBadRequest)
		return
	}
	ns := p.namespace(request.Namespace)
	want, _ := desired(request, ns)
	ctx := r.Context()
	deployments := p.clients.AppsV1().Deployments(ns)
	live, err := deployments.Get(ctx, request.Service, metav1.GetOptions{})
	if err != nil {
		fail(w, "read deployment", err)
		return
	}
	live.Labels = want.Labels
	live.Annotations = want.Annotations
	live.Spec.Template = want.Spec.Template
	if _, err := deployments.Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		fail(w, "update deployment", err)
		return
	}
	log.Printf("updated %s/%s (%s)", ns, request.Service, request.Image)
	w.WriteHeader(http.StatusAccepted)
}

func (p *provider) delete(w http.ResponseWriter, r *http.Request) {
	var request types.DeleteFunctionRequest
	if err := json.NewDecoder(r.Body).Decode(&request); err != nil {
		http.Error(w, fmt.Sprintf("invalid delete request: %v", err), http.StatusBadRequest)
		return
	}
	ns := p.namespace(request.Namespace)
	ctx := r.Context()
	err := p.clients.AppsV1().Deployments(ns).Delete(ctx, request.FunctionName, metav1.DeleteOptions{})
	if err != nil {
		fail(w, "delete deployment", err)
		return
	}
	err = p.clients.CoreV1().Services(ns).Delete(ctx, request.FunctionName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		fail(w, "delete service", err)
		return
	}
	log.Printf("deleted %s/%s", ns, request.FunctionName)
	w.WriteHeader(http.StatusAccepted)
}

func (p *provider) list(w http.ResponseWriter, r *http.Request) {
	ns := p.namespace(r.URL.Query().Get("namespace"))
	found, err := p.clients.AppsV1().Deployments(ns).List(r.Context(), metav1.ListOptions{
		LabelSelector: functionLabel,
	})
	if err != nil {
		fail(w, "list deployments", err)
		return
	}
	statuses := []types.FunctionStatus{}
	for i := range found.Items {
		statuses = append(statuses, status(&found.Items[i]))
	}
	reply(w, statuses)
}

func (p *provider) status(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	ns := p.namespace(r.URL.Query().Get("namespace"))
	deployment, err := p.clients.AppsV1().Deployments(ns).Get(r.Context(), name, metav1.GetOptions{})
	if err != nil {
		fail(w, "read deployment", err)
		return
	}
	if _, ok := deployment.Labels[functionLabel]; !ok {
		http.Error(w, "not a function", http.StatusNotFound)
		return
	}
	reply(w, status(deployment))
}

func (p *provider) info(w http.ResponseWriter, _ *http.Request) {
	reply(w, types.ProviderInfo{
		Name:          "energy-platform-test-provider",
		Orchestration: "kubernetes",
		Version:       &types.VersionInfo{Release: "test", SHA: "none"},
	})
}

// desired is the Deployment and Service faas-netes creates for a function.
func desired(request types.FunctionDeployment, ns string) (*appsv1.Deployment, *corev1.Service) {
	labels := map[string]string{}
	if request.Labels != nil {
		for k, v := range *request.Labels {
			labels[k] = v
		}
	}
	labels[functionLabel] = request.Service
	annotations := map[string]string{}
	if request.Annotations != nil {
		annotations = *request.Annotations
	}
	var env []corev1.EnvVar
	for k, v := range request.EnvVars {
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	replicas := int32(1)
	selector := map[string]string{functionLabel: request.Service}
	meta := metav1.ObjectMeta{Name: request.Service, Namespace: ns, Labels: labels, Annotations: annotations}
	deployment := &appsv1.Deployment{
		ObjectMeta: meta,
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  request.Service,
					Image: request.Image,
					Env:   env,
					Ports: []corev1.ContainerPort{{ContainerPort: functionPort, Protocol: corev1.ProtocolTCP}},
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
						HTTPGet: &corev1.HTTPGetAction{Path: "/_/health", Port: intstr.FromInt32(functionPort)},
					}},
				}}},
			},
		},
	}
	service := &corev1.Service{
		ObjectMeta: meta,
		Spec: corev1.ServiceSpec{
			Selector: selector,
			Ports: []corev1.ServicePort{{
				Name: "http", Port: functionPort, TargetPort: intstr.FromInt32(functionPort),
			}},
		},
	}
	return deployment, service
}

// status reports a function Deployment the way faas-netes does.
func status(deployment *appsv1.Deployment) types.FunctionStatus {
	template := deployment.Spec.Template
	container := template.Spec.Containers[0]
	env := map[string]string{}
	for _, v := range container.Env {
		env[v.Name] = v.Value
	}
	replicas := uint64(0)
	if deployment.Spec.Replicas != nil {
		replicas = uint64(*deployment.Spec.Replicas)
	}
	return types.FunctionStatus{
		Name:              deployment.Name,
		Image:             container.Image,
		Namespace:         deployment.Namespace,
		EnvVars:           env,
		Labels:            &template.Labels,
		Annotations:       &template.Annotations,
		Replicas:          replicas,
		AvailableReplicas: uint64(deployment.Status.AvailableReplicas),
		CreatedAt:         deployment.CreationTimestamp.Time,
	}
}

func reply(w http.ResponseWriter, body any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(body); err != nil {
		log.Printf("write reply: %v", err)
	}
}

// fail answers with the status the API server's error maps to (404, 409, ...) or 500.
func fail(w http.ResponseWriter, action string, err error) {
	code := http.StatusInternalServerError
	switch {
	case apierrors.IsNotFound(err):
		code = http.StatusNotFound
	case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
		code = http.StatusConflict
	}
	http.Error(w, fmt.Sprintf("%s: %v", action, err), code)
}
