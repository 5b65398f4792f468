//! Metric sets declared once: each metric's field, exported name and help
//! text stand on one entry, and registration is generated from the same
//! list. A metric that is counted but never registered is invisible to
//! operators; with the list written once it cannot happen.

pub use prometheus_client::registry::Registry;

/// A group of metrics that registers itself in a registry the caller has
/// already given its prefix (`ingester_`, `collector_`, …).
pub trait MetricSet {
    /// Registers every metric of the set in `registry`.
    fn register_in(&self, registry: &mut Registry);
}

/// Declares a struct of metrics and its [`MetricSet`] implementation.
///
/// Each entry is `field: Type [= initial value] => "exported_name", "help";`
/// for one metric, or `field: Type [= initial value];` for a nested
/// [`MetricSet`] registered under the same prefix. Fields without an initial
/// value start from `Default`. The struct derives `Debug` and `Clone`
/// (clones share the metrics) and implements `Default`.
///
/// ```
/// use prometheus_client::metrics::counter::Counter;
/// use spanway_service_kit::metric_set::{MetricSet, Registry};
///
/// spanway_service_kit::metric_set! {
///     /// What a worker counts.
///     pub struct WorkerMetrics {
///         /// Jobs finished.
///         jobs: Counter => "jobs", "Jobs finished";
///     }
/// }
///
/// let metrics = WorkerMetrics::default();
/// metrics.jobs.inc();
/// let mut registry = Registry::default();
/// metrics.register_in(registry.sub_registry_with_prefix("worker"));
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
/// assert!(text.contains("worker_jobs_total 1"));
/// ```
#[macro_export]
macro_rules! metric_set {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty $(= $init:expr)? $(=> $metric:literal, $help:literal)? ;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
        }

        impl ::std::default::Default for $name {
            fn default() -> Self {
                $name {
                    $( $field: $crate::__metric_initial!($($init)?), )*
                }
            }
        }

        impl $crate::metric_set::MetricSet for $name {
            fn register_in(&self, registry: &mut $crate::metric_set::Registry) {
                $( $crate::__metric_register!(registry, self.$field $(, $metric, $help)?); )*
            }
        }
    };
}

/// The initial value of one field of [`metric_set!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __metric_initial {
    () => {
        ::std::default::Default::default()
    };
    ($init:expr) => {
        $init
    };
}

/// Registers one field of [`metric_set!`]: a metric under its name, or a
/// nested set.
#[doc(hidden)]
#[macro_export]
macro_rules! __metric_register {
    ($registry:ident, $value:expr) => {
        $crate::metric_set::MetricSet::register_in(&$value, $registry)
    };
    ($registry:ident, $value:expr, $metric:literal, $help:literal) => {
        $registry.register($metric, $help, $value.clone())
    };
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::histogram::Histogram;

    use super::{MetricSet, Registry};

    crate::metric_set! {
        /// A nested set.
        struct Inner {
            /// Requests.
            requests: Counter => "requests", "Requests sent";
            /// Latency with its own buckets.
            latency: Histogram = Histogram::new([0.5, 1.0]) => "latency_seconds", "Latency";
        }
    }

    crate::metric_set! {
        /// The outer set.
        struct Outer {
            /// Exported under another name than the field's.
            produced: Counter => "records_produced", "Records produced";
            /// Registered under the outer prefix.
            inner: Inner;
        }
    }

    /// Every field is registered under the prefix the caller gave, nested
    /// sets included, with its exported name, help and initial value.
    #[test]
    fn every_field_is_registered_under_the_callers_prefix() {
        let metrics = Outer::default();
        let mut registry = Registry::default();
        metrics.register_in(registry.sub_registry_with_prefix("svc"));
        metrics.produced.inc();
        metrics.inner.requests.inc_by(2);
        metrics.inner.latency.observe(0.7);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "# HELP svc_records_produced Records produced.",
            "svc_records_produced_total 1",
            "svc_requests_total 2",
            "svc_latency_seconds_bucket{le=\"0.5\"} 0",
            "svc_latency_seconds_bucket{le=\"1.0\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }

    /// Clones share the metrics, as the services rely on.
    #[test]
    fn clones_share_the_metrics() {
        let metrics = Outer::default();
        metrics.clone().inner.requests.inc();
        assert_eq!(metrics.inner.requests.get(), 1);
    }
}
