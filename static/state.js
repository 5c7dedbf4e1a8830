// The page's one mutable state, shared by the panels: every module that reads or changes what the
// page shows imports this object; no other module keeps variables that another one reads.

export const state = {
  settings: null, // GET /config: limits, defaults, choices, run states, picture sizes
  me: null, // in a class: GET /class/me ({role, id, name, share_runs}); null without a class
  classText: "", // the last GET /class answer as text (the teacher's Class view)
  boardText: "", // the last GET /class/board answer as text (the Board view)

  // What the status panel shows.
  viewedRunId: null, // a past run opened from the history; null: follow the live run
  followedRunId: null, // of the runs training at once, the one the panel follows; null: the newest
  followedByPage: false, // followedRunId was set by the page to show that run's end, not by a click
  switchAfterEnd: false, // a run started while the page showed another's end: shown once that end is
  activeSeen: null, // ids of the runs training at the last live answer (null: none yet): new ones are said
  workers: 1, // runs the server trains at once (GET /training_status)
  currentStatus: null, // the last status shown (of the live run or of the viewed one)
  lastStatusText: "", // its text as received: an equal answer is not drawn again
  statusAt: 0, // Date.now() of the last answer that said it (its age is shown while the server is down)
  lastRunsText: "", // the same for GET /runs
  lastAnnounced: "", // "run id:state" last said to screen readers
  lastLiveRunId: null, // the run the live view showed last (null: none, or a run from the history shown)
  resumeError: null, // {runId, message}: why the last "Resume this run" was refused, said beside it

  // The connection to the server.
  serverDown: false,
  formErrorIsConnection: false, // the form's message says the server was down: it goes when it is back

  // The run history and the comparison.
  runs: [], // the last GET /runs answer
  sortKey: "started",
  sortDir: -1, // -1: descending
  selected: new Set(), // the ticked runs
  listedRunIds: null, // the runs the table lists while it is on screen (others wait behind "Show N new runs")
  compareIds: [], // runs compared, from the URL
  sweepNames: {}, // sweep id -> its name (GET /sweeps): the run table says which sweep a trial is of

  // Explore: the run whose checkpoints answer a drawing and whose layers are charted.
  exploreRunId: null, // from the address (?view=explore&run=); null: the newest run with a checkpoint
  lastDigit: null, // the last POST /predict body (a drawing or a test digit): read again by another run picked

  // Pictures.
  misclassified: {}, // model index -> the test digits its "misclassified" picture shows, in order

  // The curves (drawn with uPlot from the runs' metrics rows).
  curves: {
    runs: [], // [{runId, label, names, rows, next, gone}]
    charts: {}, // chart id -> uPlot
    shapes: {}, // chart id -> key of its series layout (a change rebuilds the chart)
    zoomed: {}, // chart id -> the user zoomed in (new data then keeps the zoom)
    dirty: false, // the list of runs changed: draw again even without new rows
    sharingZoom: false, // one chart's zoom is being applied to the others
    xAxis: "epoch",
    smoothing: 0.6,
    logLoss: false,
    fullRange: false,
    layerModel: 0, // the model whose layers are charted
  },
};
