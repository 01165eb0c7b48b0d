// Jest setup provided by Grafana scaffolding
import './.config/jest-setup';

// jsdom has no IntersectionObserver; @grafana/ui's Select menu (ScrollIndicators) observes its
// edges with one. A stub that never reports is enough for the editors' tests.
class IntersectionObserverStub {
  observe() {}
  unobserve() {}
  disconnect() {}
  takeRecords() {
    return [];
  }
}
Object.assign(global, { IntersectionObserver: IntersectionObserverStub });

// Combobox sizes its menu from the widths of its options' text, measured on a canvas; jsdom has
// none (the scaffold's setup makes getContext return nothing). A fixed-width font will do.
HTMLCanvasElement.prototype.getContext = () => ({ measureText: (text) => ({ width: String(text).length * 8 }) });

// Combobox renders its options in a virtual list (@tanstack/react-virtual) that shows only what
// fits the list's size, read from clientHeight and getBoundingClientRect; jsdom lays nothing out
// (every box is 0×0), so every element gets a 400×400 box here.
Element.prototype.getBoundingClientRect = function () {
  return { x: 0, y: 0, top: 0, left: 0, width: 400, height: 400, right: 400, bottom: 400, toJSON: () => ({}) };
};
for (const prop of ['clientWidth', 'clientHeight', 'offsetWidth', 'offsetHeight']) {
  Object.defineProperty(HTMLElement.prototype, prop, { configurable: true, get: () => 400 });
}
