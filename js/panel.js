// The flow panel (FlowPanel in panel.py): summary line, chart, export bar. The kernel
// puts js/loader.js in front of this file: mountPanel draws the panel once the page has
// the chart library.

export default {
  render({ model, el }) {
    return mountPanel(model, el);
  },
};
