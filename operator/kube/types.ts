/**
 * The Kubernetes object types the controllers build, re-exported so that only operator/kube depends on
 * @kubernetes/client-node.
 */
export type {
  V1ConfigMap,
  V1Container,
  V1Deployment,
  V1EnvVar,
  V1Ingress,
  V1Job,
  V1ObjectMeta,
  V1OwnerReference,
  V1PersistentVolumeClaim,
  V1Pod,
  V1PodDisruptionBudget,
  V1PodSpec,
  V1Secret,
  V1Service,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
