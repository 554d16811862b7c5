use std::sync::Mutex;

use lambda_runtime::Context as InvocationContext;
use lambda_runtime::tower::service_fn;

use super::*;

/// Grower states that record, in one log shared with the fake runtime below, what was written.
#[derive(Default)]
struct LoggedStates {
    log: Arc<Mutex<Vec<String>>>,
    /// A write that never finishes (Secrets Manager unreachable, say).
    hang: bool,
}

#[async_trait]
impl GrowerStates for LoggedStates {
    async fn state(&self, _user: &Uuid) -> Result<Option<GrowerState>, ConnectorError> {
        Ok(None)
    }

    async fn mark(&self, user: &Uuid, mark: Mark) {
        if self.hang {
            std::future::pending::<()>().await;
        }
        self.log.lock().unwrap().push(format!("{user} {mark:?}"));
    }
}

fn attached(id: &str) -> Mark {
    Mark::Attached {
        credentials_id: id.to_owned(),
    }
}

fn invocation(deadline_in: Duration) -> LambdaInvocation {
    let (parts, ()) = http::Response::new(()).into_parts();
    let mut context = InvocationContext::default();
    context.deadline = u64::try_from(
        (SystemTime::now() + deadline_in)
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    LambdaInvocation {
        parts,
        body: bytes::Bytes::new(),
        context,
    }
}

#[tokio::test]
async fn only_the_credentials_id_waits_for_the_flush() {
    let states = Arc::new(LoggedStates::default());
    let marks = DeferredMarks::new(states.clone());
    let user = Uuid::new_v4();
    marks.mark(&user, attached("c-1")).await;
    marks.mark(&user, Mark::Disconnected).await;
    assert_eq!(*states.log.lock().unwrap(), [format!("{user} Disconnected")]);

    marks.flush(Duration::from_secs(1)).await;
    assert_eq!(states.log.lock().unwrap().len(), 2);
    assert!(states.log.lock().unwrap()[1].contains("c-1"));
    marks.flush(Duration::from_secs(1)).await;
    assert_eq!(
        states.log.lock().unwrap().len(),
        2,
        "a flush writes each record once"
    );
}

#[tokio::test]
async fn a_grower_attached_twice_in_one_invocation_gets_the_last_id() {
    let states = Arc::new(LoggedStates::default());
    let marks = DeferredMarks::new(states.clone());
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    marks.mark(&first, attached("old")).await;
    marks.mark(&second, attached("other")).await;
    marks.mark(&first, attached("new")).await;
    marks.flush(Duration::from_secs(1)).await;
    let mut log = states.log.lock().unwrap().clone();
    log.sort();
    let mut expected = vec![
        format!("{first} {:?}", attached("new")),
        format!("{second} {:?}", attached("other")),
    ];
    expected.sort();
    assert_eq!(log, expected);
}

#[tokio::test]
async fn the_layer_writes_after_the_answer_is_posted_and_before_it_resolves() {
    let states = Arc::new(LoggedStates::default());
    let log = states.log.clone();
    let marks = Arc::new(DeferredMarks::new(states));
    let user = Uuid::new_v4();
    let handler_marks = marks.clone();
    let answer_log = log.clone();
    // Stands for the runtime's own layers: the handler runs, then the answer is posted.
    let runtime = service_fn(move |_invocation: LambdaInvocation| {
        let (marks, log) = (handler_marks.clone(), answer_log.clone());
        async move {
            marks.mark(&user, attached("c-1")).await;
            log.lock().unwrap().push("answer posted".to_owned());
            Ok::<(), Error>(())
        }
    });
    let mut service = FlushAfterResponse::new(marks).layer(runtime);
    service.call(invocation(Duration::from_secs(30))).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "answer posted".to_owned(),
            format!("{user} {:?}", attached("c-1"))
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_write_that_hangs_ends_with_the_invocation_and_keeps_the_answer() {
    let states = Arc::new(LoggedStates {
        hang: true,
        ..LoggedStates::default()
    });
    let marks = Arc::new(DeferredMarks::new(states));
    let handler_marks = marks.clone();
    let runtime = service_fn(move |_invocation: LambdaInvocation| {
        let marks = handler_marks.clone();
        async move {
            marks.mark(&Uuid::new_v4(), attached("c-1")).await;
            Err::<(), Error>("the handler's error, posted as the answer".into())
        }
    });
    let mut service = FlushAfterResponse::new(marks).layer(runtime);
    let started = tokio::time::Instant::now();
    let result = service.call(invocation(Duration::from_secs(3))).await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "the handler's error, posted as the answer"
    );
    let waited = started.elapsed();
    assert!(
        waited <= Duration::from_secs(3) - DEADLINE_MARGIN + Duration::from_millis(50),
        "{waited:?}"
    );
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
}
