// Lets the ipywidgets HTML manager (embed-amd.js, served from _static/widgets/)
// work offline beside MathJax 3. Loaded after require.js, before embed-amd.js.
(function () {
  // 1. embed-amd.js finds its fonts and chunks next to the URL that require.js
  //    resolves for its module names; point those names at _static/widgets/.
  var here = document.currentScript.src;
  var widgets = here.slice(0, here.lastIndexOf("/") + 1) + "widgets";
  require.config({
    paths: {
      "@jupyter-widgets": widgets,
      "@jupyter-widgets/html-manager/dist": widgets,
    },
  });

  // 2. The widgets typeset their labels with MathJax 2's
  //    MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]); MathJax 3 has no Hub.
  var pending = [];
  function queue() {
    for (var i = 0; i < arguments.length; i++) {
      var call = arguments[i];
      if (Array.isArray(call) && call[0] === "Typeset" && call[2]) {
        if (window.MathJax && MathJax.typesetPromise) {
          MathJax.typesetPromise([call[2]]);
        } else {
          pending.push(call[2]);
        }
      }
    }
  }
  var config = (window.MathJax = window.MathJax || {});
  config.Hub = { Queue: queue };
  config.startup = config.startup || {};
  var ready = config.startup.ready;
  config.startup.ready = function () {
    if (ready) {
      ready();
    } else {
      MathJax.startup.defaultReady();
    }
    MathJax.Hub = { Queue: queue };
    if (pending.length) {
      MathJax.typesetPromise(pending.splice(0));
    }
  };
})();
